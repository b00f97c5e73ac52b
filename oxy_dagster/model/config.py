"""Generator, training and evaluation settings, and the size presets (seed Table 3, plus CPU-sized ones)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..settings import setting

PLACEMENTS = ("none", "replace_bos", "add_bos", "left_bos", "right_bos")  # seed Table 5
COMPONENTS = ("scenario", "trigger", "concat", "fused")  # seed Table 6
AHEAD = 3  # later training targets of the same user each sample carries (``ahead``), the most dense_ahead can use


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
    emb_dropout: float = 0.0  # dropout on the encoder's input tokens (SASRec drops its embedding sum too)
    label_smoothing: float = 0.0  # on every code level's cross-entropy
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
    # dense item retrieval on the decoder state (LIGER's hybrid): the state that predicts the first code,
    # projected, scores every catalogue item's vector (code + side-feature + text embedding) by a full softmax.
    # On for #15: on Amazon Beauty at 20 minutes, 3 seeds, weight 0.25 with mix 1.0 (chosen on validation) leads
    # the recipe without it by about 6 % Recall@10 (benchmarks/results/beauty_levers_xeon_20min_dense.json)
    dense_weight: float = 0.25  # 0: no dense head
    # the dense head also learns each training sample's next dense_ahead later training targets of the same user
    # (PinnerFormer's dense all-action loss: a longer horizon of the user's interest), their mean NLL weighted as the
    # next item's; at most data.AHEAD; 0: the next item only
    dense_ahead: int = 0
    # the dense softmax in training leaves out the sample's history items (short and long) as negatives, unless one is
    # the target: where a catalogue never repeats a purchase the head need not learn to push them down, and a ranking
    # under the history filter only compares the rest (inference is unchanged: a per-user constant in the log-softmax)
    dense_exclude_history: bool = False
    # the dense head scores each item by its free per-item vector alone (item_id_emb; SASRec's output embedding)
    # instead of the whole item embedding (codes, side features, text and the per-item vector): a rare item's score is
    # then its own, not drawn to the popular items that share its codes (the inputs keep the whole embedding).
    # On for #15: chosen on validation at 20 minutes over 3 seeds (+1.6 % / +1.0 % Recall@10 / NDCG@10,
    # beauty_levers_xeon_20min_freeout.json), then at the hour +1.8 % / +5.5 % on test over the whole-embedding head
    # (benchmarks/results/beauty-hour-freeout.json against beauty-hour-v3.json)
    dense_free_items: bool = True
    dense_mix: float = 1.0  # beam search ranks its candidates by log p(codes) + dense_mix x log p_dense(item)
    # the dense head's N best items outside the beam (and outside what the caller excludes) join the beam's last-level
    # candidates, each scored by its whole code path's log-probability (teacher forced) as a beam item is: items
    # whose code paths the beam pruned can still be ranked (LIGER's hybrid retrieval); 0: the beam's items only
    dense_candidates: int = 0
    # > 0: the final list interleaves the ranked beam (gen + dense_mix x dense) with the dense head's own ranking of
    # the whole catalogue (decoding.merge_ranked; this is the dense list's weight): at 0.3 the dense head's best item
    # the beam's list lacks takes place 6 and its second place 11; at 0.5 its best three take places 4, 7 and 10. The
    # beam rarely proposes an item seen a few times in training, which the dense head's free per-item vectors rank
    # well. On for #15: chosen on validation on the reported hour's members (benchmarks/results/
    # beauty_interleave.json, a flat grid from 0.3 to 0.85; README); 0: the beam's list alone
    dense_interleave: float = 0.3
    # a learned per-item vector added to an item's embedding (zero at the start, so an item never trained on is its
    # semantic ID alone): its input token, and with a dense head also its output vector there (tied, as SASRec's);
    # the generated codes stay the semantic ID's. On for #15: on Amazon Beauty at 20 minutes, 3 seeds, +6.8 % / +6.2 %
    # Recall@10 / NDCG@10 with the dense head (benchmarks/results/beauty_levers_xeon_20min_itemid.json), and at the
    # hour +9.3 % / +11.0 % on test (beauty-hour-shrink-itemid.json)
    item_id_emb: bool = True
    # each code level's output head shares its weight matrix with that level's input code embedding (its own
    # bias), as language models tie input and output embeddings: a code is scored by its own vector
    tie_heads: bool = False
    # TIGER's hashed user-ID token: the user id hashed into this many learned vectors, one added to the encoder's
    # profile token, so a user's training samples teach the model that user (0: none; TIGER uses 2,000)
    user_buckets: int = 0
    # a sample without a trigger item takes the user's most recent history item as its instruction's trigger, so the
    # decoder's first state (the one the dense head and the first code read) holds that item's embedding directly,
    # not only through attention over the history: FPMC's last-item transition (a last-item Markov chain beats the
    # generator on targets rare in training, beauty_transitions); a sample with a trigger keeps its own
    last_item_trigger: bool = False

    def __post_init__(self):
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement {self.placement!r} not in {PLACEMENTS}")
        if self.components not in COMPONENTS:
            raise ValueError(f"components {self.components!r} not in {COMPONENTS}")
        if not 0 <= self.dense_interleave <= 1:
            raise ValueError(f"dense_interleave {self.dense_interleave} not in [0, 1] (the dense list's weight)")
        if self.dense_candidates < 0:
            raise ValueError(f"dense_candidates {self.dense_candidates} < 0")
        if not 0 <= self.dense_ahead <= AHEAD:
            raise ValueError(f"dense_ahead {self.dense_ahead} not in 0..{AHEAD} (the later targets a sample carries)")
        if self.dense_free_items and not self.item_id_emb:
            raise ValueError("dense_free_items scores items by their per-item vectors: it needs item_id_emb "
                             "(turn dense_free_items off with it)")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.code_vocab = tuple(int(v) for v in self.code_vocab)

    @classmethod
    def from_saved(cls, saved: dict) -> GeneratorConfig:
        """The config a checkpoint or deployed bundle recorded; a field added since it was written is off
        (e.g. a checkpoint from before the dense head has none), so old weights load as they were trained."""
        return cls(**{**ADDED_SINCE_OFF, **saved, "code_vocab": tuple(saved["code_vocab"])})


# fields newer than some saved configs: their "off"
ADDED_SINCE_OFF = {"dense_weight": 0.0, "dense_mix": 0.0, "dense_ahead": 0, "dense_exclude_history": False,
                   "dense_free_items": False,
                   "emb_dropout": 0.0, "label_smoothing": 0.0, "item_id_emb": False, "tie_heads": False,
                   "user_buckets": 0, "dense_candidates": 0, "last_item_trigger": False, "dense_interleave": 0.0}

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


@dataclass
class ModelChoice:
    """Which generator a run trains: a size preset and the instruction switches (seed Tables 5-7)."""

    size: str = setting("small", "size preset: tiny | small | small-moe | 0.1B ... 3.0B (seed Table 3)")
    placement: str = setting(GeneratorConfig.placement,
                             f"instruction placement (seed Table 5): {', '.join(PLACEMENTS)}")
    components: str = setting(GeneratorConfig.components,
                              f"instruction components (seed Table 6): {', '.join(COMPONENTS)}")
    use_igr: bool = setting(GeneratorConfig.use_igr, "Instruction-Guided Retrieval of long-history items")
    q2i_weight: float = setting(GeneratorConfig.q2i_weight, "weight of the Q2I alignment loss (0 disables it)")
    dropout: float = setting(GeneratorConfig.dropout, "dropout in attention, FFN and residual branches")
    emb_dropout: float = setting(GeneratorConfig.emb_dropout, "dropout on the encoder's input tokens")
    label_smoothing: float = setting(GeneratorConfig.label_smoothing, "label smoothing of each code level's loss")
    item_id_emb: bool = setting(GeneratorConfig.item_id_emb, "a learned per-item vector beside the codes (input, and "
                                                             "the dense head's output)")
    tie_heads: bool = setting(GeneratorConfig.tie_heads, "output heads share the code embeddings' weights")
    user_buckets: int = setting(GeneratorConfig.user_buckets, "hashed user-ID vectors on the profile token (0: none)")
    last_item_trigger: bool = setting(GeneratorConfig.last_item_trigger,
                                      "a sample without a trigger item takes its most recent history item as one")
    dense_weight: float = setting(GeneratorConfig.dense_weight,
                                  "weight of the dense item-retrieval loss (LIGER's hybrid; 0: no dense head)")
    dense_ahead: int = setting(GeneratorConfig.dense_ahead,
                               "the dense head also learns the user's next N later training targets (0: none)")
    dense_exclude_history: bool = setting(GeneratorConfig.dense_exclude_history,
                                          "the dense loss leaves the sample's history items out of its softmax")
    dense_free_items: bool = setting(GeneratorConfig.dense_free_items,
                                     "the dense head scores items by their per-item vectors alone")
    dense_mix: float = setting(GeneratorConfig.dense_mix,
                               "final ranking: log p(codes) + this x the dense head's log p(item)")
    dense_candidates: int = setting(GeneratorConfig.dense_candidates,
                                    "the dense head's N best items outside the beam join its candidates (0: none)")
    dense_interleave: float = setting(GeneratorConfig.dense_interleave,
                                      "the final list merged with the dense head's own ranking of the catalogue at "
                                      "this weight: at 0.3 its best item the beam's list lacks takes place 6, at 0.5 "
                                      "its best three places 4, 7 and 10 (0: the beam's list alone)")

    def overrides(self) -> dict:
        """GeneratorConfig fields this choice sets (everything but the preset name)."""
        return {k: v for k, v in asdict(self).items() if k != "size"}


@dataclass
class TrainConfig:
    """The pre-training schedule and engine (``pretrained_checkpoint``, the CLI, ablations, benchmarks)."""

    steps: int = setting(600, "optimisation steps")
    batch_size: int = setting(256, "global batch (split over the processes)")
    lr: float = setting(2e-3, "peak AdamW learning rate")
    min_lr_ratio: float = setting(0.05, "final LR as a fraction of the peak (cosine decay)")
    warmup: int = setting(100, "linear warmup steps")
    weight_decay: float = setting(0.01, "AdamW weight decay (not on embeddings, norms, biases)")
    grad_clip: float = setting(1.0, "gradient-norm clip")
    ckpt_every: int = setting(200, "steps between checkpoints (a killed run resumes from the last)")
    log_every: int = setting(10, "steps between MLflow metric records")
    seed: int = setting(0, "seed of batches, initialisation and dropout")
    peak_flops: float = setting(1.6e11, "peak FLOP/s for the MFU estimate (~2 cores x 32 FLOP/cycle x 2.5 GHz)")
    max_wall_s: float = setting(0.0, "> 0: stop after a checkpoint once training has run this long")
    budget_s: float = setting(0.0, "> 0: a wall-clock budget: train until it is spent (steps is then a cap), the "
                                   "cosine LR decaying over the budget's seconds, not over steps")
    group_by_length: int = setting(32, "> 0: each batch comes from a megabatch of this many batches sorted by history "
                                      "length (less padding computed per step); 0: uniform random batches")
    recency_weight: float = setting(0.0, "> 0: a training sample's loss weight times 1 + this x its place among its "
                                         "user's training samples (0 the first, 1 the latest), rescaled to mean 1: "
                                         "the loss leans to each user's late interactions, which the held-out "
                                         "targets follow")
    ema_decay: float = setting(0.0, "> 0: keep an exponential moving average of the weights with this decay per step; "
                                    "checkpoints carry it and evaluation, serving and post-training read it "
                                    "(0: the raw weights)")
    autocast: str = setting("off", "bf16: the forward pass under torch.autocast in bfloat16, float32 weights "
                                   "(engine=torch; pays on CPUs with AMX for long batches); off: float32")
    engine: str = setting("deepspeed", "torch (plain, one process) or deepspeed (ZeRO, any world size)")
    zero_stage: int = setting(1, "DeepSpeed ZeRO stage 0-3 (engine=deepspeed); bf16 on GPU, fp32 on CPU")
    moe: str = setting("native", "MoE presets under DeepSpeed: native replicates experts; deepspeed splits them "
                                 "over expert_parallel ranks (ZeRO 0-2)")
    expert_parallel: int = setting(0, "ranks sharing one copy of the experts (0: the world size)")
    processes: int = setting(1, "training processes; > 1: started by torchrun as a subprocess (gloo on CPU, "
                                "NCCL on GPU), the global batch split between them")

    def schedule_key(self) -> dict:
        """The fields that decide the trajectory: a checkpoint from other values cannot be resumed.

        Process count and ZeRO stage are not among them: a DeepSpeed checkpoint resumes on another world size
        or stage (``zero.py``) with the same maths."""
        return {k: v for k, v in asdict(self).items() if k not in ("ckpt_every", "log_every", "peak_flops",
                                                                 "max_wall_s", "processes",
                                                                 "zero_stage")}


@dataclass
class EvalConfig:
    """Offline evaluation of a generator checkpoint (``offline_eval``)."""

    split: str = setting("test", "held-out split: test or valid")
    beam: int = setting(50, "beam width of the trie-constrained beam search")
    max_rows: int = setting(0, "evaluate the first N users of the split (0: all)")
    exclude_history: bool = setting(False, "never recommend an item already in the user's history")
