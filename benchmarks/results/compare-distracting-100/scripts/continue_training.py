"""Continue training a compare backbone's saved world model (fresh Adam) and probe every --every steps."""
import argparse, os, time, numpy as np, torch
from pathlib import Path
from world_models import compare as C
from world_models.imagine import load_world_model
p = argparse.ArgumentParser(); p.add_argument('--run'); p.add_argument('--data'); p.add_argument('--steps', type=int, default=500)
p.add_argument('--every', type=int, default=100); p.add_argument('--lr', type=float, default=1e-3); p.add_argument('--skip', type=int, default=800)
a = p.parse_args(); torch.set_num_threads(1)
lm = load_world_model(a.run); wm = lm.wm
data = C.ensure_data(lm.env, Path(a.data), 1000, 64, 0, 'random')
batches = C.sequence_batches(data['train'], 4, 102, lm.act_space, torch.device('cpu'), 0)
for _ in range(a.skip):  # the batches the compare trained on, so these are the ones after them
    next(batches)
opt = torch.optim.Adam(wm.parameters(), lr=a.lr, eps=1e-8); t0 = time.time()
for step in range(1, a.steps + 1):
    wm.train(); loss, m = wm.loss(next(batches)); opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(wm.parameters(), 100.0); opt.step()
    if step % a.every == 0:
        wm.eval(); pr = C.run_probes(wm, 'reward', data['eval'], lm.act_space, torch.device('cpu'))
        print(f"step {a.skip + step} {time.time()-t0:.0f}s rew {m['loss/reward']:.4f} acc inf {pr['reward_acc_inference']:.3f} img {pr['reward_acc_imagination']:.3f} load {os.getloadavg()[0]:.1f}", flush=True)
