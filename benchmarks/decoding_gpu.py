"""GPU benchmark of large-beam decoding: the serving decoder (``BeamDecoder``: encode once, beams folded into the
batch against the shared encoder output, dense per-level trie tables, the beam-step kernel) on a Beauty-shaped
``small`` generator, eager and with its level loop replayed from CUDA graphs (``GraphedBeamDecoder``), per beam
width, requests per batch and ensemble size (``--members``: the one-hour Beauty model is 3 generators).

Random weights (speed only: the work per step does not depend on them), every request a full 20-item history; the
committed defaults (dense head on free item vectors, mixed into the last level's ranking, its own list
interleaved). Latency is the wall time
of one ``decode`` call with CUDA synchronisation: median and p99 over ``--reps`` calls after 3 warm-up calls (their
seconds recorded: they hold Triton's compilation and, in mode ``graphed``, the graph's capture). A graphed row says
whether its lists equal the eager decoder's on the same batch (``matches_eager``) and where its time goes: the eager
start (encoders and prefix pass, ``start_ms``) against the graph's replay (``replay_ms``); ``start_per_members`` counts
the CUDA kernels one start launches and their GPU time. ``--device cpu`` is a smoke run
recorded under no name (``graphed`` runs its padded path without graphs there). Usage on a GPU machine:
``python -m benchmarks.decoding_gpu`` -> ``benchmarks/results/decoding_gpu.json`` and ``decoding_gpu.png``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np
import torch

from benchmarks.generator_gpu import batch, beauty_shaped
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.graphed_decoding import GraphedBeamDecoder, pad_memory
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def model_of(members: int):
    """One Beauty-shaped ``small`` generator, or an ensemble of ``members`` over the same codes (the others are
    perturbed copies of the first: same shapes, other lists)."""
    first = beauty_shaped("small").eval()
    if members == 1:
        return first
    others = []
    for i in range(1, members):
        torch.manual_seed(i)
        m = copy.deepcopy(first)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
        others.append(m)
    return GeneratorEnsemble([first, *others]).eval()


def decoder_for(mode: str, model, dense: DenseTrie):
    if mode == "compiled":  # torch.compile of encoder, decoder layers, beam step (failed in inductor on torch 2.11)
        return BeamDecoder(model, dense, compile=True)
    eager = BeamDecoder(model, dense)
    return GraphedBeamDecoder(eager) if mode == "graphed" else eager


def timings_ms(call, reps: int, sync) -> list[float]:
    """Wall milliseconds of ``reps`` calls, each between device synchronisations."""
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    return times


def time_shape(decoder, b: dict, beam: int, reps: int, sync) -> dict:
    t0 = time.perf_counter()
    for _ in range(3):
        items, scores = decoder.decode(b, beam=beam, topk=20)
    warmup_s = time.perf_counter() - t0
    times = timings_ms(lambda: decoder.decode(b, beam=beam, topk=20), reps, sync)
    p50 = float(np.median(times))
    return {"p50_ms": round(p50, 2), "p99_ms": round(float(np.percentile(times, 99)), 2),
            "valid_share": float((items >= 0).float().mean()), "warmup_s": round(warmup_s, 2),
            "lists": (items, scores)}


def graphed_split(decoder: GraphedBeamDecoder, b: dict, beam: int, reps: int, sync) -> dict:
    """Where a graphed call's time goes (after ``time_shape`` captured its graph): the members' eager start (encoder
    and prefix pass, padded to the graph's memory) and the replay of the captured level loop, medians in ms."""
    eager = decoder.decoder

    def start():
        return [pad_memory(eager._start(j, b), decoder.max_memory) for j in range(len(eager.members))]

    n_req = len(b["target"])
    entry = next(e for (shapes, bm, _), e in decoder.captured.items() if bm == beam and shapes[0][0] == n_req)
    return {name: round(float(np.median(timings_ms(call, reps, sync))), 2)
            for name, call in (("start_ms", start), ("replay_ms", entry.graph.replay))}


def start_kernels(decoder: BeamDecoder, b: dict) -> dict:
    """CUDA kernels one eager start launches and their GPU time (ms): a launch-bound start has many, each short."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            [decoder._start(j, b) for j in range(len(decoder.members))]
        torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    return {"kernels_per_start": sum(e.count for e in kernels) // 5,
            "gpu_ms_per_start": round(sum(e.self_device_time_total for e in kernels) / 5 / 1000, 3)}


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oxy_dagster.io import save_figure

    members = sorted({r["members"] for r in rows})
    fig, axes = plt.subplots(1, len(members), figsize=(6 * len(members), 4), squeeze=False)
    for ax, n in zip(axes[0], members):
        mine = [r for r in rows if r["members"] == n]
        shapes = sorted({(r["beam"], r["requests"]) for r in mine})
        x = np.arange(len(shapes))
        modes = sorted({r["mode"] for r in mine})
        for i, mode in enumerate(modes):
            p50 = [next(r["p50_ms"] for r in mine if r["mode"] == mode and (r["beam"], r["requests"]) == s)
                   for s in shapes]
            ax.bar(x + (i - (len(modes) - 1) / 2) * 0.8 / len(modes), p50, 0.8 / len(modes), label=mode)
        ax.set_xticks(x, [f"beam {b}\n{r} req" for b, r in shapes], fontsize=7)
        ax.set(ylabel="p50 ms per decode call", title=f"{n} generator(s)")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--beams", default="50,256,512")
    ap.add_argument("--requests", default="1,8,32")
    ap.add_argument("--members", default="1,3")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--modes", default="eager,graphed",
                    help="eager, graphed (GraphedBeamDecoder: CUDA graphs of the level loop) and/or compiled "
                         "(BeamDecoder(compile=True))")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("decoding_gpu needs a CUDA GPU (--device cpu for a smoke run)")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows, starts = [], {}
    for n_members in (int(x) for x in args.members.split(",")):
        with torch.device("cpu"):
            model = model_of(n_members)
            first = model.members[0] if n_members > 1 else model
            dense = DenseTrie.from_trie(CodeTrie.build(first.item_codes.numpy(), list(model.cfg.code_vocab)))
            g = torch.Generator().manual_seed(2)
            inputs = {n: batch(first, n, g) for n in (int(x) for x in args.requests.split(","))}
        inputs = {n: {k: v.to(device) for k, v in b.items()} for n, b in inputs.items()}
        model = model.to(device)
        dense = DenseTrie(dense.levels, dense.vocab, [t.to(device) for t in dense.child])
        torch.set_default_device(device)  # what the eager decoder creates on the fly lands beside the model
        eager_lists = {}
        for mode in args.modes.split(","):
            decoder = decoder_for(mode, model, dense)
            for beam in (int(x) for x in args.beams.split(",")):
                for n_req, b in inputs.items():
                    row = time_shape(decoder, b, beam, args.reps, sync)
                    items, scores = row.pop("lists")
                    if mode == "eager":
                        eager_lists[beam, n_req] = (items, scores)
                    elif (beam, n_req) in eager_lists:
                        want_items, want_scores = eager_lists[beam, n_req]
                        row["matches_eager"] = bool(torch.equal(items, want_items)
                                                    and torch.allclose(scores, want_scores, atol=1e-4))
                    if mode == "graphed" and decoder.graphs:
                        with torch.inference_mode():
                            row.update(graphed_split(decoder, b, beam, args.reps, sync))
                    rows.append({"mode": mode, "members": n_members, "beam": beam, "requests": n_req, **row,
                                 "requests_per_s": round(n_req * 1000 / row["p50_ms"], 1)})
                    print(rows[-1], flush=True)
        if device.type == "cuda":
            with torch.inference_mode():
                starts[n_members] = start_kernels(BeamDecoder(model, dense), inputs[min(inputs)])
        torch.set_default_device("cpu")
    if device.type != "cuda":
        return
    from benchmarks.common import RESULTS, write_result

    shape = lambda r: (r["members"], r["beam"], r["requests"])  # noqa: E731
    eager_p50 = {shape(r): r["p50_ms"] for r in rows if r["mode"] == "eager"}
    speedup = {f"{r['members']}x_beam{r['beam']}_req{r['requests']}": round(eager_p50[shape(r)] / r["p50_ms"], 2)
               for r in rows if r["mode"] == "graphed" and shape(r) in eager_p50}
    png = RESULTS / "decoding_gpu.png"
    plot(rows, png)
    write_result("decoding_gpu", {"device": torch.cuda.get_device_name(0), "preset": "small", "reps": args.reps,
                                  "shapes": rows, "graphed_speedup_p50": speedup,
                                  "all_graphed_match_eager": all(r.get("matches_eager", True) for r in rows),
                                  "start_per_members": starts,
                                  "torch": torch.__version__}, artifacts=[png])


if __name__ == "__main__":
    main()
