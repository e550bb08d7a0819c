"""llama.cpp, through llama-cpp-python's C-level bindings, on the workloads of `gllmk bench`:
the same token ids, shapes, thread count and timing rules (best of 3), so the two print
comparable lines. Installed by bench/peers/setup.sh; run by bench/peers/compare.sh.

    llama_peer.py model  FILE.gguf                   prefill 512 tokens, decode 64 (+ greedy sample)
    llama_peer.py batch  FILE.gguf SIZES             decode steps of B sequences at once, B in SIZES
    llama_peer.py logits FILE.gguf IDS OUT.f32       every position's logits row, top-10 of the last
    llama_peer.py greedy FILE.gguf IDS N             N greedy continuation ids, and their text
    llama_peer.py embed  FILE.gguf [IDS ... ]        32 x 128-token throughput, or one vector per id list
IDS: comma-separated token ids. Threads: GLLM_NUM_THREADS, else all cores.
"""
import ctypes
import os
import sys
import time

import llama_cpp as L
import numpy as np

THREADS = int(os.environ.get("GLLM_NUM_THREADS", os.cpu_count()))


def quiet(level, text, user_data):
    pass


LOG = L.llama_log_callback(quiet)


def open_model(path, n_ctx, n_batch, embeddings=False, n_seq=1):
    L.llama_log_set(LOG, None)
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        sys.exit(f"llama.cpp could not load {path}")
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, n_batch, n_batch, n_seq
    cp.n_threads = cp.n_threads_batch = THREADS
    if os.environ.get("PEER_F32_KV"):  # f32 KV cache, attention without flash_attn's f16 path
        cp.type_k = cp.type_v = 0
        cp.flash_attn_type = 0
    if embeddings:
        cp.embeddings = True
        cp.pooling_type = 1  # mean, as all-MiniLM-L6-v2
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit("llama.cpp could not create a context")
    return model, ctx


def clear(ctx):
    mem = L.llama_get_memory(ctx)
    if mem:
        L.llama_memory_clear(mem, True)


def decode(ctx, ids):
    arr = (L.llama_token * len(ids))(*ids)
    if L.llama_decode(ctx, L.llama_batch_get_one(arr, len(ids))) != 0:
        sys.exit("llama_decode failed")


def vocab_size(model):
    return L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))


def cmd_model(path):
    model, ctx = open_model(path, 1024, 512)
    vocab = vocab_size(model)
    ids = [(i * 7919 + 13) % vocab for i in range(512)]
    greedy = L.llama_sampler_init_greedy()
    pre = dec = 1e30
    for _ in range(3):
        clear(ctx)
        t = time.perf_counter()
        decode(ctx, ids)
        tok = L.llama_sampler_sample(greedy, ctx, -1)
        pre = min(pre, time.perf_counter() - t)
        clear(ctx)
        decode(ctx, ids[:8])
        tok = L.llama_sampler_sample(greedy, ctx, -1)
        one = (L.llama_token * 1)()
        t = time.perf_counter()
        for _ in range(64):  # the generation loop: forward, sample, feed back
            one[0] = tok
            if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) != 0:
                sys.exit("llama_decode failed")
            tok = L.llama_sampler_sample(greedy, ctx, -1)
        dec = min(dec, time.perf_counter() - t)
    print(f"llama.cpp {'prefill 512 tokens':<22} {pre * 1e3:10.1f} ms {512 / pre:12.1f} tokens/s  ({THREADS} threads)")
    print(f"llama.cpp {'decode+sample (per token)':<22} {dec * 1e3 / 64:10.3f} ms {64 / dec:12.1f} tokens/s")


def cmd_batch(path, sizes):
    """gllmk bench's batched decode: B sequences of the same 8 prompt ids, then steps of one
    token each for all B (one llama_decode) and a greedy pick per sequence; ms per step, best
    of two rounds of 8 steps"""
    sizes = [int(b) for b in sizes.split(",")]
    model, ctx = open_model(path, 64 * max(sizes), 512, n_seq=max(sizes))
    vocab = vocab_size(model)
    prompt = [(i * 7919 + 13) % vocab for i in range(8)]
    greedy = L.llama_sampler_init_greedy()
    for n in sizes:
        clear(ctx)
        batch = make_batch([prompt] * n)
        for i in range(batch.n_tokens):
            batch.logits[i] = i % 8 == 7  # the last prompt position of each sequence
        if L.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
        L.llama_batch_free(batch)
        ids = [L.llama_sampler_sample(greedy, ctx, 8 * b + 7) for b in range(n)]
        step = L.llama_batch_init(n, 0, 1)
        step.n_tokens = n
        pos, best = 8, 1e30
        for _ in range(2):
            t = time.perf_counter()
            for _ in range(8):
                for b in range(n):
                    step.token[b], step.pos[b], step.n_seq_id[b], step.logits[b] = ids[b], pos, 1, 1
                    step.seq_id[b][0] = b
                if L.llama_decode(ctx, step) != 0:
                    sys.exit("llama_decode failed")
                ids = [L.llama_sampler_sample(greedy, ctx, b) for b in range(n)]
                pos += 1
            best = min(best, (time.perf_counter() - t) / 8)
        L.llama_batch_free(step)
        what = f"batch decode+sample, {n} seq{'s' if n > 1 else ''}"
        print(f"llama.cpp {what:<30} {best * 1e3:10.3f} ms {n / best:12.1f} tokens/s of all")


def cmd_logits(path, ids, out):
    ids = [int(t) for t in ids.split(",")]
    model, ctx = open_model(path, 1024, 512)
    vocab = vocab_size(model)
    batch = L.llama_batch_init(len(ids), 0, 1)
    batch.n_tokens = len(ids)
    for i, t in enumerate(ids):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, 1
        batch.seq_id[i][0] = 0
    if L.llama_decode(ctx, batch) != 0:
        sys.exit("llama_decode failed")
    rows = np.stack([np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(vocab,)).copy()
                     for i in range(len(ids))])
    rows.astype("<f4").tofile(out)
    last = rows[-1]
    for i in np.argsort(-last)[:10]:
        print(f"{i:6d} {last[i]:11.4f}")
    L.llama_batch_free(batch)


def cmd_greedy(path, ids, n):
    model, ctx = open_model(path, 1024, 512)
    greedy = L.llama_sampler_init_greedy()
    decode(ctx, [int(t) for t in ids.split(",")])
    out = []
    for _ in range(int(n)):
        tok = L.llama_sampler_sample(greedy, ctx, -1)
        out.append(tok)
        decode(ctx, [tok])
    vocab, buf, text = L.llama_model_get_vocab(model), ctypes.create_string_buffer(256), b""
    for tok in out:
        n = L.llama_token_to_piece(vocab, tok, buf, len(buf), 0, False)
        text += buf.raw[:n]
    print(",".join(map(str, out)))
    print(repr(text.decode("utf-8", "replace")))


def make_batch(seqs):
    n = sum(len(s) for s in seqs)
    batch = L.llama_batch_init(n, 0, 1)
    batch.n_tokens = n
    k = 0
    for s, seq in enumerate(seqs):
        for p, t in enumerate(seq):
            batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = t, p, 1, 1
            batch.seq_id[k][0] = s
            k += 1
    return batch


def embed_batch(ctx, batch, n_seq, dim):
    """the pooled, L2-normalised vector of each sequence"""
    clear(ctx)
    if L.llama_decode(ctx, batch) != 0:
        sys.exit("llama_decode failed")
    vecs = np.array([np.ctypeslib.as_array(L.llama_get_embeddings_seq(ctx, s), shape=(dim,)) for s in range(n_seq)],
                    dtype=np.float64)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def cmd_embed(path, lists):
    n_seq, length = (32, 128) if not lists else (len(lists), max(len(x.split(",")) for x in lists))
    model, ctx = open_model(path, n_seq * length, n_seq * length, embeddings=True, n_seq=n_seq)
    dim = L.llama_model_n_embd(model)
    if lists:
        batch = make_batch([[int(t) for t in x.split(",")] for x in lists])
        for v in embed_batch(ctx, batch, n_seq, dim):
            print(" ".join(f"{x:.7f}" for x in v))
        return
    # the same ids as gllmk bench's embedding case
    batch = make_batch([[101 if t == 0 else 102 if t == length - 1 else 1000 + (i * 131 + t * 17) % 20000
                         for t in range(length)] for i in range(n_seq)])
    best = 1e30
    for _ in range(3):
        t = time.perf_counter()
        embed_batch(ctx, batch, n_seq, dim)
        best = min(best, time.perf_counter() - t)
    print(f"llama.cpp {'32 sentences x 128 tokens':<22} {best * 1e3:9.1f} ms {n_seq / best:12.1f} sentences/s"
          f"  ({THREADS} threads)")


if __name__ == "__main__":
    cmds = {"model": (cmd_model, 1), "batch": (cmd_batch, 2), "logits": (cmd_logits, 3), "greedy": (cmd_greedy, 3)}
    if len(sys.argv) >= 3 and sys.argv[1] == "embed":
        cmd_embed(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 2 and sys.argv[1] in cmds and len(sys.argv) == 2 + cmds[sys.argv[1]][1]:
        cmds[sys.argv[1]][0](*sys.argv[2:])
    else:
        sys.exit(__doc__)
