"""Exports into other runtimes' formats (export.py).

    cli.py              export.py: the flags, the formats (FORMATS), the checks before writing
    source.py           ExportSource: a .pth memory-mapped, an adapter merged into it on the fly
    safetensors_file.py a .safetensors written one tensor at a time
    st.py               ai00 / web-rwkv's .st: its key names, layouts and fp16, for models and states
"""
