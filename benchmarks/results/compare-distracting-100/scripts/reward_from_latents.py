"""Diagnosis of memory/distracting-100 (issue 7): can a fresh backbone + reward head learn the reward from
frozen posterior latents? The image encoder/decoder (three quarters of a train step) is left out, so a
step costs ~70 ms instead of ~1 s: the latents z_t (posterior modes of a trained s5 world model) are
computed once, then a new backbone reads (z_{t-1}, a_{t-1}) and a reward head reads (h_t, z_t) with the
world model's two-hot loss. Prints the reward accuracy at the decided step on 64 train and 32 eval episodes.

    ZCACHE=/tmp/z1000.pt NTR=1000 DATA=runs/compare-distracting-100-e2000/data \
        python benchmarks/results/compare-distracting-100/scripts/reward_from_latents.py --steps 2000 --every 250
    FIXED=1 ...   the same data with the arm fixed to 0 and the reward relabelled by the cue alone (no XOR)
    --cfg '{"dt_min": 0.01, "ssm_state_features": true}'   WorldModelConfig overrides; --rs scales the loss
"""
import sys, time, json, os, numpy as np, torch, argparse
import world_models
from world_models import backbones
from world_models.nets import MLP
from world_models.distributions import TwoHotSymlog
from envs.dataset import load_episodes
from world_models.imagine import load_world_model, episodes_to_batch
p = argparse.ArgumentParser()
p.add_argument('--backbone', default='s5'); p.add_argument('--steps', type=int, default=400)
p.add_argument('--lr', type=float, default=1e-3); p.add_argument('--bs', type=int, default=4)
p.add_argument('--cfg', default='{}'); p.add_argument('--every', type=int, default=50); p.add_argument('--rs', type=float, default=1.0)
a = p.parse_args(); torch.set_num_threads(1)
cache = os.environ.get('ZCACHE', '/tmp/z.pt'); NTR = int(os.environ.get('NTR', 200)); DATA = os.environ.get('DATA', 'runs/compare-distracting-100-long/data')
if not os.path.exists(cache):
    lm = load_world_model('runs/compare-distracting-100-long/s5'); wm = lm.wm
    out = {}
    for split, n in (('train', NTR), ('eval', 32)):
        eps = load_episodes(f'{DATA}/{split}')[:n]
        zs, acts, rs = [], [], []
        for i in range(0, n, 16):
            b = episodes_to_batch(eps[i:i+16], lm.act_space, 'cpu', length=102)
            with torch.no_grad():
                post, _, f, _ = wm.observe({'image': b['image']}, b['action'], b['is_first'], sample=False)
            zs.append(f[..., wm.h_dim:]); acts.append(b['action']); rs.append(b['reward'])
        out[split] = (torch.cat(zs), torch.cat(acts), torch.cat(rs))
    torch.save(out, cache)
data = torch.load(cache)
cfg = world_models.WorldModelConfig.preset('small', **json.loads(a.cfg))
Z, A, R = data['train']; Ze, Ae, Re = data['eval']
zd, ad = Z.shape[-1], A.shape[-1]
if os.environ.get('FIXED'):
    for T in ((Z, A, R), (Ze, Ae, Re)):
        z_, a_, r_ = T
        arm = a_[:, 100].argmax(-1); cue = torch.where(r_[:, 101] > 0, arm, 1 - arm)
        a_[:, 100] = torch.tensor([1.0, 0.0]); r_[:, 101] = torch.where(cue == 0, 1.0, -1.0)

width = world_models.model.fit_width(a.backbone, world_models.model.Spec(True, 0, ad), cfg)
torch.manual_seed(0)
bb = backbones.make(a.backbone, zd + ad, width, cfg)
head = MLP(bb.out_dim + zd, cfg.reward_bins, cfg.hidden, cfg.mlp_layers, cfg.norm, cfg.act)
torch.nn.init.zeros_(head.net[-1].weight)
params = list(bb.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=a.lr)
def run(Z, A):
    B, L = Z.shape[:2]
    x = torch.cat([torch.cat([torch.zeros_like(Z[:, :1]), Z[:, :-1]], 1), torch.cat([torch.zeros_like(A[:, :1]), A[:, :-1]], 1)], -1)
    isf = torch.zeros(B, L, dtype=torch.bool); isf[:, 0] = True
    h, _ = bb(x, isf)
    return head(torch.cat([h, Z], -1))
g = torch.Generator().manual_seed(0); t0 = time.time()
for step in range(1, a.steps + 1):
    idx = torch.randint(len(Z), (a.bs,), generator=g)
    logits = run(Z[idx], A[idx])
    nll = -TwoHotSymlog(logits).log_prob(R[idx])  # (B, L)
    loss = nll.mean() * a.rs
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 100.0); opt.step()
    if step % a.every == 0:
        with torch.no_grad():
            pe = TwoHotSymlog(run(Ze, Ae)).mean[:, 101]; pt = TwoHotSymlog(run(Z[:64], A[:64])).mean[:, 101]
        print(f'step {step} {time.time()-t0:.0f}s loss {nll.mean():.4f} last {nll[:, 101].mean():.3f} train acc {(torch.sign(pt)==R[:64,101]).float().mean():.2f} eval acc {(torch.sign(pe)==Re[:,101]).float().mean():.2f}', flush=True)
