"""Export a fine-tuned RWKV model into another runtime's format.

    python export.py --model merged.pth --format st --out model.st          # ai00 / web-rwkv
    python export.py --model base.pth --adapter out/bone --format st --out bone.st

See `python export.py --help` and src/export/.
"""

if __name__ == "__main__":
    from src.entry import run
    run("src.export.cli", "export.py")
else:                                     # importable too: `from export import main`
    from src.export.cli import main
    __all__ = ["main"]
