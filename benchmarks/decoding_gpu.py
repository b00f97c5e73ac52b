"""GPU benchmark of large-beam decoding: the serving decoder (``BeamDecoder``: encode once, beams folded into the
batch against the shared encoder output, dense per-level trie tables, the beam-step kernel) on a Beauty-shaped
``small`` generator, per beam width and requests per batch.

Random weights (speed only: the work per step does not depend on them), every request a full 20-item history.
Latency is the wall time of one ``decode`` call with CUDA synchronisation: median and p99 over ``--reps`` calls
after 3 warm-up calls (their seconds recorded: they hold the compilation in mode ``compiled``). ``--device cpu``
is a smoke run recorded under no name. Usage on a GPU machine:
``python -m benchmarks.decoding_gpu`` -> ``benchmarks/results/decoding_gpu.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from benchmarks.generator_gpu import batch, beauty_shaped
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--beams", default="50,256,512")
    ap.add_argument("--requests", default="1,8,32")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--modes", default="eager,compiled", help="eager, and/or compiled (BeamDecoder(compile=True): "
                                                              "torch.compile of encoder, decoder layers, beam step)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("decoding_gpu needs a CUDA GPU (--device cpu for a smoke run)")
    with torch.device("cpu"):
        model = beauty_shaped("small").eval()
        dense = DenseTrie.from_trie(CodeTrie.build(model.item_codes.numpy(), list(model.cfg.code_vocab)))
        g = torch.Generator().manual_seed(2)
        inputs = {n: batch(model, n, g) for n in (int(x) for x in args.requests.split(","))}
    model = model.to(device)
    dense = DenseTrie(dense.levels, dense.vocab, [t.to(device) for t in dense.child])
    torch.set_default_device(device)  # what the decoder creates on the fly lands beside the model
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for mode in args.modes.split(","):
        decoder = BeamDecoder(model, dense, compile=mode == "compiled")
        for beam in (int(x) for x in args.beams.split(",")):
            for n_req, b in inputs.items():
                b = {k: v.to(device) for k, v in b.items()}
                t0 = time.perf_counter()
                for _ in range(3):
                    items, _ = decoder.decode(b, beam=beam, topk=20)
                warmup_s = time.perf_counter() - t0
                valid = float((items >= 0).float().mean())
                times = []
                for _ in range(args.reps):
                    sync()
                    t0 = time.perf_counter()
                    decoder.decode(b, beam=beam, topk=20)
                    sync()
                    times.append(1000 * (time.perf_counter() - t0))
                rows.append({"mode": mode, "beam": beam, "requests": n_req,
                             "p50_ms": round(float(np.median(times)), 2),
                             "p99_ms": round(float(np.percentile(times, 99)), 2),
                             "requests_per_s": round(n_req * 1000 / float(np.median(times)), 1),
                             "valid_share": valid, "warmup_s": round(warmup_s, 1)})
                print(rows[-1], flush=True)
    if device.type != "cuda":
        return
    from benchmarks.common import write_result

    write_result("decoding_gpu", {"device": torch.cuda.get_device_name(0), "preset": "small", "reps": args.reps,
                                  "shapes": rows, "torch": torch.__version__})


if __name__ == "__main__":
    main()
