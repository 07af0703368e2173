memmap-replay run /out/raw/devdax-mem-4K-8G/layout.jsonl --strategy martins-compound --threads 1 --repeat 5 --faults none --verify  -o /out/raw/devdax-mem-4K-8G/replay.run.json --json
