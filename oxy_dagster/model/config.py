"""Generator configuration and size presets (seed Table 3, plus small presets for 2 CPU cores)."""

from __future__ import annotations

from dataclasses import dataclass, field

PLACEMENTS = ("none", "replace_bos", "add_bos", "left_bos", "right_bos")  # seed Table 5
COMPONENTS = ("scenario", "trigger", "concat", "fused")  # seed Table 6


@dataclass
class GeneratorConfig:
    # catalogue (filled from the SID codebook and the item table)
    code_vocab: tuple[int, ...] = (256, 256, 256, 8)  # per code level, the 4th is the collision code
    n_cate: int = 2
    n_brand: int = 2
    n_scenarios: int = 5
    profile_vocab: dict[str, int] = field(default_factory=lambda: {"age_band": 8, "gender": 4, "city": 64,
                                                                  "spending_tier": 4})
    text_dim: int = 384
    # backbone
    d_model: int = 128
    n_heads: int = 4
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.1
    n_experts: int = 0  # 0: dense FFN; > 0: Mixture-of-Experts FFN
    top_k_experts: int = 2
    moe_balance_weight: float = 0.01
    # inputs
    max_short: int = 20
    igr_k: int = 8  # long-history items kept by Instruction-Guided Retrieval (0: no long branch)
    use_igr: bool = True  # False: the most recent igr_k long-history items instead of retrieval
    # instruction (seed 2.3, Tables 5-6)
    placement: str = "right_bos"
    components: str = "fused"
    # Q2I alignment (seed eq. 2)
    q2i_weight: float = 0.1  # 0 disables
    q2i_temperature: float = 0.07
    q2i_var_weight: float = 1.0
    q2i_decor_weight: float = 0.01
    adapter_dim: int = 64

    def __post_init__(self):
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement {self.placement!r} not in {PLACEMENTS}")
        if self.components not in COMPONENTS:
            raise ValueError(f"components {self.components!r} not in {COMPONENTS}")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.code_vocab = tuple(int(v) for v in self.code_vocab)


# Seed Table 3 (hidden / intermediate, experts total / active) and CPU-sized presets.
PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=64, n_heads=4, n_enc_layers=1, n_dec_layers=1, d_ff=128),
    "small": dict(d_model=128, n_heads=4, n_enc_layers=2, n_dec_layers=2, d_ff=512),
    "small-moe": dict(d_model=128, n_heads=4, n_enc_layers=2, n_dec_layers=2, d_ff=256, n_experts=4,
                      top_k_experts=2),
    "0.1B": dict(d_model=1024, n_heads=16, n_enc_layers=4, n_dec_layers=4, d_ff=512, n_experts=2, top_k_experts=1),
    "0.4B": dict(d_model=2048, n_heads=16, n_enc_layers=4, n_dec_layers=6, d_ff=1024, n_experts=4, top_k_experts=2),
    "0.7B": dict(d_model=2048, n_heads=16, n_enc_layers=4, n_dec_layers=8, d_ff=1024, n_experts=8, top_k_experts=2),
    "1.5B": dict(d_model=2048, n_heads=16, n_enc_layers=4, n_dec_layers=8, d_ff=1024, n_experts=24, top_k_experts=2),
    "3.0B": dict(d_model=2048, n_heads=16, n_enc_layers=4, n_dec_layers=16, d_ff=1024, n_experts=24,
                 top_k_experts=2),
}


def preset(name: str, **overrides) -> GeneratorConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {list(PRESETS)}")
    return GeneratorConfig(**{**PRESETS[name], **overrides})
