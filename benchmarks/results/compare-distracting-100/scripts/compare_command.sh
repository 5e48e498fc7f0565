cd /work/main && . .venv/bin/activate
uptime; date
/usr/bin/time -v torchrun --nproc-per-node 2 -m agents.cli -- compare --task distracting-100 --backbones s5,rssm --preset small --steps 800 --batch-size 4 --episodes 1000 --eval-episodes 64 --lr 1e-3 --reward-scale 100 --threads 1 --out runs/compare-distracting-100-arm0 2>&1 | grep -v "it/s\]" | grep -v "s/it\]"
uptime; date
