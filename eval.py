"""Loss and perplexity of an RWKV-6 or RWKV-7 model (base, merged, or base + adapter / state) on binidx data: python eval.py --help"""

if __name__ == "__main__":
    from src.entry import run
    run("src.infer.evaluate", "eval.py")
else:                                     # importable too: `from eval import main`
    from src.infer.evaluate import main
    __all__ = ["main"]
