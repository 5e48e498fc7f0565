"""Diagnosis of memory/distracting-100 (issue 7), run from the repository root:

    python benchmarks/results/compare-distracting-100/scripts/cue_in_memory.py RUN_DIR DATA_DIR
    e.g. RUN_DIR=runs/compare-distracting-100-long/s5 DATA_DIR=runs/compare-distracting-100-long/data

Decodes the first 8 frames of 4 eval episodes (truth above, reconstruction below: is the cue seen and
decoded?), prints the predicted vs true reward at the decided step (step 101), and fits a ridge probe of
the cue from the backbone output h_t on 64 train episodes, scored on the 32 eval episodes, at several t
(is the cue still in the memory at the reward step?). Writes /tmp/cue_frames.png.
"""
import sys, numpy as np, torch, imageio
from envs.dataset import load_episodes
from world_models.imagine import load_world_model, episodes_to_batch, decode_frames, open_loop
torch.set_num_threads(1)
run = sys.argv[1]; data = sys.argv[2]
lm = load_world_model(run); wm = lm.wm
eps = load_episodes(data + '/eval')[:32]
tr = load_episodes(data + '/train')[:64]
def feats(eps):
    b = episodes_to_batch(eps, lm.act_space, 'cpu', length=102)
    with torch.no_grad():
        _, _, f, _ = wm.observe({'image': b['image']}, b['action'], b['is_first'], sample=False)
        roll = open_loop(wm, b, 100, 2)
    return b, f, roll.features
b, f, fi = feats(eps)
with torch.no_grad():
    rec = decode_frames(wm, f[:4, :8]).numpy()
tru=b['image'][:4,:8].numpy()/255.
grid=lambda x: np.concatenate([np.concatenate(list(r),1) for r in x],0)
imageio.imwrite('/tmp/cue_frames.png', (np.concatenate([grid(tru),grid(rec)],0)*255).astype(np.uint8))
cue = np.array([int(e['cue']) for e in eps]); act = b['action'][:, 100].argmax(-1).numpy(); r = b['reward'][:, 101].numpy()
with torch.no_grad():
    pr = wm.reward(f[:, 101]).numpy(); pri = wm.reward(fi[:, 101]).numpy()
print('pred reward inference', np.round(pr[:12], 2)); print('true', r[:12])
print('acc inf', np.mean(np.sign(pr) == r), 'acc img', np.mean(np.sign(pri) == r))
# linear probe of the cue from h at several steps (train on train eps, test on eval)
bt, ft, _ = feats(tr)
cue_t = np.array([int(e['cue']) for e in tr])
from numpy.linalg import lstsq
H = wm.h_dim
for t in (0, 4, 10, 50, 100, 101):
    X = ft[:, t, :H].numpy(); Xe = f[:, t, :H].numpy()
    m, s = X.mean(0), X.std(0) + 1e-6
    X = (X - m) / s; Xe = (Xe - m) / s
    lam = 10.0
    w = np.linalg.solve(X.T @ X + lam * np.eye(H), X.T @ (2 * cue_t - 1.0))
    print(f't={t} cue probe train acc {np.mean((X@w>0)==cue_t):.2f} eval acc {np.mean((Xe@w>0)==cue):.2f}')
