"""The only place kernel names and generated paths are built."""


def symbol(op, isa, dtype=None):
    """gllm_<op>_<dtype>_<isa>, e.g. gllm_gemv_q4_0_avx512."""
    return f"gllm_{op}_{dtype}_{isa}" if dtype else f"gllm_{op}_{isa}"


def kernel_path(op, isa, dtype=None):
    """generated/cpu/<isa>/<op>_<dtype>_<isa>.c"""
    stem = f"{op}_{dtype}_{isa}" if dtype else f"{op}_{isa}"
    return f"cpu/{isa}/{stem}.c"


def dtype_enum(dtype):
    return f"GLLM_DTYPE_{dtype.upper()}"


def block_type(dtype):
    return f"gllm_block_{dtype}"
