import json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
import numpy as np, torch
from blindspots.world import train as T
from blindspots.world.spec import load_spec
from blindspots.world.card import model_card, failed_thresholds

def chunk(args):
    from blindspots.world.renderer import render_attributes
    a, s = args
    return render_attributes(a, s, size=64, spec=load_spec())

def fast_render(spec, attributes, seeds, task, progress, chunk_size=1000):
    jobs = [(attributes[i:i+chunk_size], seeds[i:i+chunk_size]) for i in range(0, len(attributes), chunk_size)]
    with ProcessPoolExecutor(14) as pool:
        return np.concatenate(list(pool.map(chunk, jobs)))

def summary(c):
    out = {}
    for k in ("classifier", "classifier_b"):
        s = c[k]; out[k] = [s["in_distribution_accuracy"], s["outside_failure_rate"], min(b["failure_rate"] for b in s["blind_spots"])]
    out["cap"] = c["captioner"]["per_axis_accuracy"]; out["zs"] = c["embedder"]["zero_shot_accuracy"]
    out["fail"] = failed_thresholds(c)
    return out

if __name__ == "__main__":
    T.render_set = fast_render
    spec = load_spec()
    out = os.environ.get("OUT", "/tmp/out")
    variants = json.loads(sys.argv[1])
    cache = {}
    for v in variants:
        t0 = time.time()
        plan = T.TrainPlan(device=os.environ.get("DEV", "cuda"), **v["plan"])
        key = (plan.biased_images, plan.prior_images)
        if key not in cache:
            cache[key] = T.render_training_data(spec, 0, plan)
        arch = {k: dict(T.ARCHITECTURES[k], **v.get("arch", {}).get(k, {})) for k in T.ARCHITECTURES}
        trained = T.train_models(cache[key], 0, plan, architectures=arch)
        folder = f"{out}/{v['name']}"; os.makedirs(folder, exist_ok=True)
        T.write_world(__import__("pathlib").Path(folder), T._spec_text(None), T.world_meta(spec, 0, plan, trained, arch), trained)
        c = model_card(folder, n=int(os.environ.get("CARDN", 300)), seed=5, device=os.environ.get("DEV", "cuda"))
        print(v["name"], round(time.time()-t0), {k: round(m.final_loss, 3) for k, m in trained.items()}, json.dumps(summary(c)), flush=True)
    # 2-thread CPU training throughput per model
    torch.set_num_threads(2)
    for name, arch in T.ARCHITECTURES.items():
        from blindspots.world import nets
        from torch.nn import functional as F
        m = nets.build_model("classifier", arch, {"n_labels": 12}) if name != "captioner" else nets.build_model("captioner", arch, {"field_sizes": {"a": 12, "b": 6, "c": 4, "d": 7, "e": 3, "f": 3, "g": 4, "h": 3}})
        opt = torch.optim.AdamW(m.parameters()); x = torch.randint(0, 255, (128, 64, 64, 3), dtype=torch.uint8)
        for i in range(12):
            if i == 2: t = time.perf_counter()
            o = m(x); l = (o if isinstance(o, torch.Tensor) else o[0]).logsumexp(1).mean(); opt.zero_grad(); l.backward(); opt.step()
        print("cpu2", name, round(128*10/(time.perf_counter()-t)), "train img/s", flush=True)
