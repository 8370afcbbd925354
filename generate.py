"""Generate text with an RWKV-6 or RWKV-7 model (base, merged, or base + adapter / state): python generate.py --help"""

if __name__ == "__main__":
    from src.entry import run
    run("src.infer.generate", "generate.py")
else:                                     # importable too: `from generate import main`
    from src.infer.generate import main
    __all__ = ["main"]
