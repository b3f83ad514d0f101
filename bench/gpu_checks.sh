#!/bin/bash
# The GPU checks of bench/results/gpu_checks.txt, on a machine with a GPU, onnxruntime-gpu and ticketpack installed:
#     bash bench/gpu_checks.sh MODEL.onnx      (an exported digits model, e.g. bench/export_bench.py's resnet compact)
# 1. no GPU visible: --provider cuda must exit 2, --provider auto must warn, report cpu and keep --json parseable;
# 2. GPU visible: auto picks cuda; `ticketpack serve --provider cuda` answers a 3-image request.
set -u
M=${1:?usage: bash bench/gpu_checks.sh MODEL.onnx}
echo "== no GPU visible (CUDA_VISIBLE_DEVICES empty)"
CUDA_VISIBLE_DEVICES= python3 -m ticketpack evaluate $M --provider cuda --batch-sizes 1 --latency-budget 0.2 --json > ${TMPDIR:-/tmp}/a1.json; echo "cuda: exit $?, stdout bytes $(wc -c < ${TMPDIR:-/tmp}/a1.json)"
CUDA_VISIBLE_DEVICES= python3 -m ticketpack evaluate $M --provider auto --batch-sizes 1 --latency-budget 0.2 --json > ${TMPDIR:-/tmp}/a2.json; echo "auto: exit $?"
python3 -c "import json; print('auto --json parses; provider:', json.load(open('${TMPDIR:-/tmp}/a2.json'))['provider'])"
CUDA_VISIBLE_DEVICES= python3 -c "
import warnings, ticketpack
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    m = ticketpack.load('$M', provider='auto')
print('python api provider:', m.provider, '| warnings:', [str(x.message)[:160] for x in w])"
echo "== GPU visible"
python3 -m ticketpack evaluate $M --provider auto --batch-sizes 1 --latency-budget 0.2 --json > ${TMPDIR:-/tmp}/b.json; echo "auto: exit $?"
python3 -c "import json; print('auto --json parses; provider:', json.load(open('${TMPDIR:-/tmp}/b.json'))['provider'])"
python3 -m ticketpack serve resnet=$M --provider cuda --port 8765 --no-access-log > ${TMPDIR:-/tmp}/serve.log 2>&1 &
PID=$!
for i in $(seq 1 60); do curl -s -o /dev/null -w "%{http_code}" localhost:8765/readyz | grep -q 200 && break; sleep 0.5; done
python3 -c "
import json
from sklearn.datasets import load_digits
d = load_digits(); json.dump({'inputs': d.images[:3].tolist()}, open('${TMPDIR:-/tmp}/body.json', 'w')); print('true labels', d.target[:3].tolist())"
curl -s -X POST localhost:8765/v1/models/resnet/predict -H 'content-type: application/json' --data @${TMPDIR:-/tmp}/body.json | python3 -c "import json,sys; a=json.load(sys.stdin); print('served labels', [p['label'] for p in a['predictions']])"
curl -s localhost:8765/v1/models | python3 -c "import json,sys; a=json.load(sys.stdin); print('served provider', [m.get('provider') for m in a.get('models', a if isinstance(a, list) else [])])"
kill -TERM $PID; wait $PID; echo "serve exit $?"; tail -5 ${TMPDIR:-/tmp}/serve.log

# Training on the GPU against all CPU cores (search round of the residual CNN, 32x32x3, batch 256; target >= 5x)
python bench/gpu_training.py --images 20000 --steps 200 --workers 8
