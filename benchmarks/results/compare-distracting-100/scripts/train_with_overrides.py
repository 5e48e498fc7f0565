"""Train one backbone on a compare data set with WorldModelConfig overrides and print the reward probe every
--every steps (e.g. --cfg '{"reward_scale": 100}' --lr 1e-3):
    python benchmarks/results/compare-distracting-100/scripts/train_with_overrides.py --steps 400 --lr 1e-3 \
        --cfg '{"reward_scale": 100}' --data runs/compare-distracting-100-long/data
--fixed-arm 0 keeps the episodes whose junction action is arm 0 (80% for training, eval from the rest).
"""
import sys, time, json, os, numpy as np, torch, argparse
import world_models, envs
from envs.dataset import load_episodes
from world_models import compare as C
from world_models.imagine import model_obs_space
p = argparse.ArgumentParser()
p.add_argument('--backbone', default='s5'); p.add_argument('--steps', type=int, default=300)
p.add_argument('--lr', type=float, default=3e-4); p.add_argument('--bs', type=int, default=4)
p.add_argument('--every', type=int, default=50); p.add_argument('--data', default='runs/compare-distracting-100-long/data')
p.add_argument('--fixed-arm', type=int, default=-1); p.add_argument('--cfg', default='{}'); p.add_argument('--seed', type=int, default=0); p.add_argument('--episodes', type=int, default=200)
a = p.parse_args()
torch.set_num_threads(1)
tr = load_episodes(a.data + '/train')[:a.episodes]; ev = load_episodes(a.data + '/eval')[:32]
if a.fixed_arm >= 0:  # episodes whose junction action is this arm: the same as a policy that always takes it
    arm = lambda ep: int(np.argmax(ep['action'][100]))
    n_tr = int(0.8 * len(tr))
    tr, ev = [ep for ep in tr[:n_tr] if arm(ep) == a.fixed_arm], [ep for ep in tr[n_tr:] if arm(ep) == a.fixed_arm][:64]
    print('fixed arm', a.fixed_arm, 'train', len(tr), 'eval', len(ev), 'eval +1 share', np.mean([ep['reward'][101] > 0 for ep in ev]), flush=True)
env = envs.make('memory/distracting-100'); obs_space = model_obs_space(env.observation_space); act = env.action_space
cfg = world_models.WorldModelConfig.preset('small', **json.loads(a.cfg))
torch.manual_seed(a.seed)
wm = world_models.make(a.backbone, obs_space, act, cfg)
opt = torch.optim.Adam(wm.parameters(), lr=a.lr, eps=1e-8)
batches = C.sequence_batches(tr, a.bs, 102, act, torch.device('cpu'), a.seed)
t0 = time.time(); times = []
for step in range(1, a.steps + 1):
    b = next(batches); s = time.perf_counter()
    wm.train(); loss, m = wm.loss(b); opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(wm.parameters(), 100.0); opt.step(); times.append(time.perf_counter() - s)
    if step % a.every == 0 or step == a.steps:
        wm.eval(); pr = C.run_probes(wm, 'reward', ev, act, torch.device('cpu'))
        print(f"step {step} {time.time()-t0:.0f}s med step {np.median(times[-a.every:])*1000:.0f}ms loss {m['loss']:.1f} img {m['loss/image']:.1f} rew {m['loss/reward']:.4f} "
              f"acc inf {pr['reward_acc_inference']:.3f} img {pr['reward_acc_imagination']:.3f} load {os.getloadavg()[0]:.1f}", flush=True)
