"""Independent check of the embedding path on the real all-MiniLM-L6-v2: the numpy forward
(bert_numpy.py) against the vectors `gllmk embed --out` writes.
usage: python3 tests/reference/minilm_numpy.py build/gllmk models/all-MiniLM-L6-v2"""
import subprocess
import sys
import tempfile

import numpy as np

from bert_numpy import Bert

gllmk, model = sys.argv[1], sys.argv[2]
ref = Bert(model)
seqs = [[101, 1037, 2158, 2003, 5983, 2833, 1012, 102],        # a man is eating food .
        [101, 1996, 2047, 3185, 2003, 12476, 1012, 102],       # the new movie is awesome .
        [101, 2129, 2079, 1045, 6524, 2061, 21723, 7852, 102]]  # how do i bake so ##urdough bread
with tempfile.NamedTemporaryFile(suffix=".f32") as out:
    args = [gllmk, "embed", "-m", model, "--out", out.name]
    for s in seqs:
        args += ["--tokens", ",".join(map(str, s))]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    ours = np.fromfile(out.name, dtype=np.float32).reshape(len(seqs), -1)
worst = 0.0
for i, s in enumerate(seqs):
    r = ref.embed(s)
    worst = max(worst, float(np.abs(ours[i] - r).max()))
    print(f"sequence {i}: cosine(ours, numpy) = {float(ours[i] @ r / np.linalg.norm(ours[i])):.7f}, "
          f"max |diff| = {np.abs(ours[i] - r).max():.2e}")
# a text past sentence-transformers' max_seq_length (256): [CLS], its first 254 ids, [SEP]
with tempfile.NamedTemporaryFile(suffix=".f32") as out:
    subprocess.run([gllmk, "embed", "-m", model, "--out", out.name, "A man is eating food. " * 60], check=True, stdout=subprocess.DEVNULL)
    got = np.fromfile(out.name, dtype=np.float32)
r = ref.embed([101] + ([1037, 2158, 2003, 5983, 2833, 1012] * 60)[:254] + [102])
worst = max(worst, float(np.abs(got - r).max()))
print(f"a text of 362 ids, cut at 256: cosine(ours, numpy) = {float(got @ r / np.linalg.norm(got)):.7f}, "
      f"max |diff| = {np.abs(got - r).max():.2e}")
ok = worst < 1e-4
print(f"{len(seqs) if ok else 0} passed, {0 if ok else len(seqs)} failed")
sys.exit(0 if ok else 1)
