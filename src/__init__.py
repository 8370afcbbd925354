"""RWKV-6 and RWKV-7 fine-tuning with Bone, Bat, DiSHA, LoRA and PiSSA adapters and state tuning.

    model/     the model-family registry; each family's config, network and initialisation; checkpoints, state
    wkv/       the operator core the WKV packages share (backends, dtypes, kernel builds)
    wkv6/      the WKV6 operator: naive (the reference), chunked, cuda (our kernel, cuda/)
    wkv7/      the WKV7 operator: naive, chunked, cuda
    peft/      the adapters, their registry, adapter files, merging into plain .pth files
    data/      binidx files, the World tokenizer, jsonl conversion, resumable sampling
    train/     train.py: configuration, the run, the Lightning module, DeepSpeed, checkpoints
    infer/     generate.py and eval.py: loading for inference, sampling, generation, evaluation
    bench/     benchmarks writing docs/benchmarks.md
    utils/     atomic writes, the repository's paths, self-documenting configuration
    demo.py    `bash scripts/demo.sh`
    entry.py   how the top-level scripts start (a Ctrl-C while importing is one line)
"""
