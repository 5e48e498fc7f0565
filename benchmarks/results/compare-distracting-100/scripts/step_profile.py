"""Where a world-model train step goes on memory/distracting-100 (B sequences of 102 steps, one thread):
    python benchmarks/results/compare-distracting-100/scripts/step_profile.py s5 4
"""
import time, os, numpy as np, torch, world_models, envs, sys
from envs.dataset import load_episodes
from world_models import compare as C
from world_models.imagine import model_obs_space
torch.set_num_threads(1)
bb = sys.argv[1]; B = int(sys.argv[2])
eps = load_episodes('runs/compare-distracting-100-long/data/eval')[:16]
env = envs.make('memory/distracting-100'); act = env.action_space
wm = world_models.make(bb, model_obs_space(env.observation_space), act, world_models.WorldModelConfig.preset('small'))
batch = next(C.sequence_batches(eps, B, 102, act, torch.device('cpu'), 0))
def t(fn, n=3):
    ts = []
    for _ in range(n):
        s = time.perf_counter(); fn(); ts.append(time.perf_counter() - s)
    return 1000 * np.median(ts)
obs = {'image': batch['image']}
with torch.no_grad():
    e = wm.encoder(obs); feat = wm._observe(obs, batch['action'], batch['is_first'], None, True, None, False)[2]
r = {}
r['encoder fwd'] = t(lambda: wm.encoder(obs))
r['observe fwd (enc+post+backbone+prior)'] = t(lambda: wm.observe(obs, batch['action'], batch['is_first']))
r['decoder fwd'] = t(lambda: wm.decoder(feat))
r['heads fwd'] = t(lambda: (wm.reward_head(feat), wm.cont_head(feat)))
def full():
    loss, _ = wm.loss(batch); loss.backward()
r['loss fwd'] = t(lambda: wm.loss(batch))
r['loss fwd+bwd'] = t(full)
def dec_fb():
    f = feat.detach().requires_grad_(); wm.decoder(f)['image'].sum().backward()
r['decoder fwd+bwd'] = t(dec_fb)
print(bb, 'B', B, 'L 102', {k: round(v) for k, v in r.items()}, 'load', os.getloadavg()[0])
