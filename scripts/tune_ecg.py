"""Hyperparameter search for the ECG task, scored on the VALIDATION split only.

Score = mean validation accuracy over clean and perturbed validation inputs
(white/mult 0.4, 0.8, 1.2), so robustness is tuned without looking at the test set.
Usage: python scripts/tune_ecg.py MODEL OUT.jsonl --grid step=0.03,0.1,0.3 lr=0.001,0.003 ...
"""

import argparse
import itertools
import json
import time

from noisyrnn.data import load_task
from noisyrnn.evaluation import robustness
from noisyrnn.ensemble import can_batch
from noisyrnn.models import build_model
from noisyrnn.training import TrainConfig, train_model
from noisyrnn.training import fit_ensemble

COLUMNS = ["clean", "white_0.4", "white_0.8", "white_1.2", "mult_0.4", "mult_0.8", "mult_1.2"]
TRAIN_KEYS = set(TrainConfig.__dataclass_fields__) - {"seed"}


def parse_value(v):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v, v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--grid", nargs="+", default=[])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=100, help="tuning seeds differ from the report's 0..9")
    args = ap.parse_args()
    task = load_task("ecg")
    grid = {k: [parse_value(x) for x in v.split(",")] for k, v in (g.split("=") for g in args.grid)}
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        setting = {}
        for key, value in zip(keys, combo):  # "a+b=v" sets both a and b to v
            setting.update({k: value for k in key.split("+")})
        train = {k: v for k, v in setting.items() if k in TRAIN_KEYS}
        params = {k: v for k, v in setting.items() if k not in TRAIN_KEYS}
        train.setdefault("epochs", 100)
        train.setdefault("lr_milestones", [int(train["epochs"] * 0.9)])
        scores = []
        t0 = time.time()
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        if len(seeds) > 1 and can_batch([build_model(args.model, task.input_size, task.num_classes, **params)]):
            cfg = TrainConfig.from_dict({**train, "seed": seeds[0]})
            trained = fit_ensemble(args.model, params, task, cfg, seeds, progress=False)
        else:
            trained = [train_model(args.model, params, task, TrainConfig.from_dict({**train, "seed": s}),
                                   progress=False) for s in seeds]
        for seed, res in zip(seeds, trained):
            scores.append(robustness(res.model, task.val, COLUMNS, seed=seed))
        mean = {c: sum(s[c] for s in scores) / len(scores) for c in COLUMNS}
        rec = {"model": args.model, "setting": setting, "val": mean,
               "score": sum(mean.values()) / len(mean), "seconds": time.time() - t0}
        print(json.dumps(rec), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
