"""The kernel matrix as data: ISAs x dtypes x ops.

Spec holds data, codegen/*.py holds rules, templates/ hold shape.
Adding a dtype = one DType entry below + templates/cpu/dtypes/<name>.j2
(its code-unpack snippet per ISA) + its reference dequantisation in src/ref.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Isa:
    name: str
    arch: str          # "any", "x86_64" or "aarch64": where it can be compiled
    width: int         # f32 lanes of one float vector
    header: str        # SIMD wrapper header in src/simd/
    cflags: tuple      # compiler flags for this ISA's sources only
    gemm_mr: int       # register tile rows (activations)
    gemm_nr: int       # register tile columns (weights rows), float path
    qgemm_mr: int      # register tile rows, int8 path
    qgemm_nv: int = 1         # int8-path tile columns in vectors (NR = qgemm_nv * width)
    gemv_pairs: bool = False  # block gemv takes two blocks per register (gq2_* in the header)
    gemv_quads: bool = False  # one-row gemv of 4-bit codes: 4 rows x 4 blocks in a vector's lanes (AVX-512 BW)
    i16_dot: bool = False     # int8 dots by vpmaddubsw (int16 sums of pairs, widened by vpmaddwd), not vpdpbusd
    by_lane: bool = False     # the gemm tiles multiply by element (NEON sdot v.4b[l], fmla v.s[l]): X stays in vectors, no broadcasts
    attn_kb: int = 8          # attention: keys per block, one per lane (a multiple of the width, <= 16)
    bf16_dot: bool = False    # gemm of bf16 weights by pairwise bf16 dots (activations rounded to bf16)
    amx: bool = False         # gemm on AMX-BF16 tiles (tdpbf16ps, gemm_mr rows a tile): bf16, the block formats dequantised
    qgemm_block: tuple = ()   # int8-path gemm cache blocking (KC, NC, MC) where not the default below
    fgemm_block: tuple = ()   # float-path gemm cache blocking (KC, NC, MC) where not the default below
    base: str = ""            # an extension of another ISA: only the `own` kernels are its own,
    own: tuple = ()           # (op, dtype kind or name) pairs; every other slot takes the base's kernel

    @property
    def family(self):
        """the ISA whose op restrictions (Op.isas) apply"""
        return self.base or self.name

    def generates(self, op, dt=None):
        """whether this ISA has its own kernel of op (for dtype dt; None: an ISA op)"""
        if dt is not None and not op.applies(dt, self):
            return False
        return not self.base or (dt is not None and bool({(op.name, dt.kind), (op.name, dt.name)} & set(self.own)))

    def kernel_isa(self, op, dt=None):
        """the ISA whose kernel fills this ISA's slot of op"""
        return self.name if self.generates(op, dt) else self.base


ISAS = [
    Isa("scalar", "any", 1, "simd/scalar.h", (), 4, 4, 4, attn_kb=4),
    Isa("avx2", "x86_64", 8, "simd/avx2.h", ("-mavx2", "-mfma", "-mf16c"), 6, 16, 4, i16_dot=True),
    Isa("avx512", "x86_64", 16, "simd/avx512.h",
        ("-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl",
         "-mavx512vnni", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c"), 12, 32, 6,
        qgemm_nv=2, gemv_pairs=True, gemv_quads=True, attn_kb=16, bf16_dot=True, qgemm_block=(512, 768, 48)),
    # AVX-512 with AMX-BF16 and AMX-INT8 (Sapphire Rapids on): its own gemm (bf16; the block formats
    # dequantised to bf16 as they are packed; f32 and f16 split into two bf16 parts), attention on
    # tiles and the batched gemv of the block formats (int8 dots on tiles, 9 to 32 rows),
    # AVX-512's kernels elsewhere; the int8-path fields
    # are the base's (no kernel of its own uses them)
    Isa("amx", "x86_64", 16, "simd/amx.h",
        ("-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mavx512bf16", "-mavx2",
         "-mfma", "-mf16c", "-mamx-tile", "-mamx-bf16", "-mamx-int8"), 32, 32, 6,
        qgemm_nv=2, gemv_pairs=True, gemv_quads=True, attn_kb=16, bf16_dot=True, qgemm_block=(512, 768, 48),
        fgemm_block=(1024, 512, 64), amx=True, base="avx512",
        own=(("gemm", "block"), ("gemm", "float"), ("attn_tiles", "float"), ("gemv_lanes", "block"))),
    Isa("neon", "aarch64", 4, "simd/neon.h", ("-march=armv8.2-a+dotprod+fp16",), 6, 16, 6, attn_kb=16, by_lane=True),
]


@dataclass(frozen=True)
class DType:
    name: str
    kind: str             # "float": element-wise; "block": block-quantised
    block: int            # elements per block (1 for float kinds)
    block_bytes: int      # bytes per block
    gguf_type: int        # GGML type id, -1 when the format is ours
    bits: int             # bits per element (codes, for block kinds)
    layout: str           # C struct body of one block (block kinds)
    doc: str              # value formula and bit layout, for the generated header
    codes_signed: bool = False  # block: codes are int8 (else unsigned)
    code_max: int = 0     # block: largest unsigned code (or 127 when signed)
    scale: tuple = ()     # block: value = a*code + c with a = mul * (f16 field): (field, mul)
    offset: tuple = ()    # block: c = mul * (f16 field): (field, mul); () when c = 0
    tol: float = 0.0      # matmul tolerance, relative to sum|w||x| per output
    roundtrip: float = 0.0  # quantise->dequantise bound, relative to the block's max |x|


    # --- rules derived from the data above (templates use these, not the raw tuples) ---
    @staticmethod
    def _half_expr(b, field, mul):
        h = f"gllm_f16_to_f32({b}->{field})"
        return h if mul == 1 else f"{float(mul)!r}f * {h}"

    def scale_expr(self, b):
        """C expression of a for block pointer b"""
        return self._half_expr(b, *self.scale)

    def offset_expr(self, b):
        """C expression of c for block pointer b"""
        return self._half_expr(b, *self.offset) if self.offset else "0.0f"

    @property
    def code_bytes(self):
        """block: bytes of its 32 codes, after its f16 fields"""
        return 32 * self.bits // 8

    @property
    def half_fields(self):
        """block: how many f16 fields lead it (scale, then offset)"""
        return (self.block_bytes - self.code_bytes) // 2

    @property
    def code_offset(self):
        """integer z with c == z*a exactly (the offset folds into the integer dot), else None"""
        if not self.offset or self.offset[0] != self.scale[0] or self.offset[1] % self.scale[1]:
            return None
        return self.offset[1] // self.scale[1]


DTYPES = [
    DType("f32", "float", 1, 4, 0, 32, "", "IEEE binary32", tol=1e-4),
    DType("f16", "float", 1, 2, 1, 16, "", "IEEE binary16", tol=1e-4, roundtrip=2**-11),
    DType("bf16", "float", 1, 2, 30, 16, "", "bfloat16 (upper half of binary32)", tol=1e-4,
          roundtrip=2**-8),
    DType("q8_0", "block", 32, 34, 8, 8, "uint16_t d; int8_t qs[32];",
          "x[t] = d*qs[t] (GGUF Q8_0)",
          codes_signed=True, code_max=127,
          scale=("d", 1), tol=2e-2, roundtrip=0.5 / 127 + 1e-3),
    DType("q4_0", "block", 32, 18, 2, 4, "uint16_t d; uint8_t qs[16];",
          "x[t] = d*(q[t]-8); byte j holds q[j] (low nibble) and q[j+16] (high nibble) (GGUF Q4_0)",
          code_max=15, scale=("d", 1), offset=("d", -8),
          tol=2e-2, roundtrip=1.0 / 8 + 1e-3),
    DType("q4_1", "block", 32, 20, 3, 4, "uint16_t d; uint16_t m; uint8_t qs[16];",
          "x[t] = d*q[t] + m; nibbles as Q4_0 (GGUF Q4_1)",
          code_max=15, scale=("d", 1), offset=("m", 1),
          tol=2e-2, roundtrip=0.5 / 7.5 + 1e-3),
    DType("q2_0", "block", 32, 10, -1, 2, "uint16_t d; uint8_t qs[8];",
          "x[t] = d*(q[t]-2); q[t] = bits 2*(t/8)..2*(t/8)+1 of byte t%8",
          code_max=3, scale=("d", 1), offset=("d", -2),
          tol=2e-2, roundtrip=0.5 + 1e-3),
    DType("q1_0", "block", 32, 6, -1, 1, "uint16_t d; uint8_t qs[4];",
          "x[t] = q[t] ? +d : -d; q[t] = bit t of the little-endian 32-bit word qs",
          code_max=1, scale=("d", 2), offset=("d", -1),
          tol=2e-2, roundtrip=1.0 + 1e-3),
]


@dataclass(frozen=True)
class Op:
    name: str
    template: str
    doc: str
    params: str = ""   # C parameter list
    ret: str = "void"
    fn_type: str = ""  # grid ops: the function-pointer type of its table slots (src/core/kernel_abi.h)
    kinds: tuple = ("float", "block")  # grid ops: the dtype kinds it exists for
    dtypes: tuple = ()  # grid ops: only these dtypes (empty: every dtype of its kinds)
    isas: tuple = ()    # grid ops: only these ISAs, by name or family (empty: every ISA)

    def applies(self, dt, isa=None):
        return (dt.kind in self.kinds and (not self.dtypes or dt.name in self.dtypes)
                and (isa is None or not self.isas or isa.family in self.isas or isa.name in self.isas))


_MATMUL = "const gllm_matmul_args *a, size_t j0, size_t j1, void *scratch"
OPS = [
    Op("gemv", "cpu/gemv.c.j2", "y[i,j] = W[j,:].X[i,:] (+ bias[j]) for a few rows i, weights read once: the decode path",
       _MATMUL, fn_type="gllm_matmul_fn"),
    Op("gemv_lanes", "cpu/gemv_lanes.c.j2",
       "gemv a vector's lanes of weight rows at a time (16 AVX-512, 8 AVX2): tiled weights (GLLM_TILE_ROWS, "
       "src/core/kernel_abi.h; j0, j1 multiples of 16), or rows gathered so (any j0, j1)", _MATMUL,
       fn_type="gllm_matmul_fn", kinds=("block",), dtypes=("q8_0", "q4_0", "q4_1"), isas=("avx2", "avx512")),
    Op("gemm", "cpu/gemm.c.j2", "Y[i,j] = X[i,:].W[j,:] (+ bias[j]): the prefill path", _MATMUL,
       fn_type="gllm_matmul_fn"),
    Op("quantize", "cpu/quantize.c.j2", "f32 rows -> dtype rows", "const float *x, void *y, size_t k",
       fn_type="gllm_quantize_fn"),
    Op("dequantize", "cpu/dequantize.c.j2", "dtype rows -> f32 rows", "const void *x, float *y, size_t k",
       fn_type="gllm_dequantize_fn"),
    Op("attn", "cpu/attn.c.j2",
       "flash attention of query rows over keys [t0, t1) of one KV head in a paged cache of this dtype",
       "const gllm_attn_args *a, size_t t0, size_t t1, float *o, float *m, float *l",
       fn_type="gllm_attn_fn", kinds=("float",)),
    Op("attn_tiles", "cpu/attn_tiles.c.j2",
       "attn on AMX-BF16 tiles, 16 query rows a tile (prefill): q, k, v and the weights rounded to bf16, sums f32",
       "const gllm_attn_args *a, size_t t0, size_t t1, float *o, float *m, float *l",
       fn_type="gllm_attn_fn", kinds=("float",), isas=("amx",)),
]

# Ops that exist once per ISA, outside the dtype grid (f32 activations); one
# template per family, the op name picks the member.
ISA_OPS = [
    Op("act_quant", "cpu/act_quant.c.j2",
       "f32 activations -> q8 blocks (d, sum, 32 x int8) for the int8-dot matmul path",
       "const float *x, gllm_q8x *y, size_t k"),
    Op("rmsnorm", "cpu/norm.c.j2", "y = x / sqrt(mean(x^2) + eps) * w (w may be NULL)",
       "const float *x, const float *w, float *y, size_t n, float eps"),
    Op("layernorm", "cpu/norm.c.j2", "y = (x - mean) / sqrt(var + eps) * w + b (w, b may be NULL)",
       "const float *x, const float *w, const float *b, float *y, size_t n, float eps"),
    Op("l2norm", "cpu/norm.c.j2", "y = x / sqrt(sum(x^2)) (y = x where x is all zero; y may alias x)",
       "const float *x, float *y, size_t n"),
    Op("silu_mul", "cpu/eltwise.c.j2", "y = silu(g) * u = g / (1 + exp(-g)) * u",
       "const float *g, const float *u, float *y, size_t n"),
    Op("gelu", "cpu/eltwise.c.j2", "y = x/2 * (1 + erf(x / sqrt 2))", "const float *x, float *y, size_t n"),
    Op("add", "cpu/eltwise.c.j2", "y = a + b (residual add; y may alias a or b)",
       "const float *a, const float *b, float *y, size_t n"),
    Op("mul", "cpu/eltwise.c.j2", "y = a * b (y may alias a or b)", "const float *a, const float *b, float *y, size_t n"),
    Op("softmax", "cpu/reduce.c.j2", "y = exp(x - max) / sum (y may alias x)", "const float *x, float *y, size_t n"),
    Op("argmax", "cpu/reduce.c.j2", "index of the largest x (the first on ties)", "const float *x, size_t n",
       "size_t"),
    Op("mean_rows", "cpu/reduce.c.j2",
       "y = the mean of the rows of x (rows x n, contiguous) that mask selects (NULL: all); returns how many "
       "it selected (none: y = 0)", "const float *x, const uint8_t *mask, size_t rows, size_t n, float *y",
       "size_t"),
    Op("rope", "cpu/rope.c.j2",
       "rotate the first rot dims of each of nh heads of one token in place; cs = rot/2 cosines then "
       "rot/2 sines; neox: pairs (i, i + rot/2), else (2i, 2i + 1)",
       "float *x, size_t nh, size_t hd, size_t rot, const float *cs, int neox"),
]

# Cache blocking of the gemm family (elements of k, rows of W, rows of X). AVX-512 and AMX
# block the int8 path alike (the same sums in the same order: the same bits) with a longer k
# block: AMX's tiles are fast enough that the partial sums' trips to Y (once per k block) bound
# it at 256 (512x4096^2 q8_0: 620 -> 830 GOPS; AVX-512 610-660 either way). AMX's bf16 gemm
# (Isa.fgemm_block) blocks k by 1024: its sums go through Y once per k block (512x11008x4096,
# 2 threads: KC 256 960-990 GFLOPS, 1024 1130-1160).
GEMM_KC = 256   # the float path's (f32 2048^3 and 512x4096^2 on AVX-512 with MR 12: 128 -> 256 +10-20 %)
GEMM_QKC = 256  # the int8 path's k block (8 blocks of 32)
GEMM_NC = 1024
GEMM_MC = 72


def gemm_scratch():
    """Bytes of per-thread gemm scratch: (weight panels, activation panels), the most any ISA's
    blocking needs. Default blocking: per weight row of a k block, KC f32 values or QKC/32
    blocks of 32 codes + a + c; an ISA's own float blocking (AMX: KC, NC, MC) 2-byte values,
    and no activation panels (its tiles read X prepared by the caller)."""
    per_k = max(GEMM_KC * 4, GEMM_QKC // 32 * 40)
    own = [isa.fgemm_block for isa in ISAS if isa.fgemm_block]
    panels = max([GEMM_NC * per_k] + [nc * kc * 2 for kc, nc, mc in own])
    return panels, (GEMM_MC + 8) * per_k
