memmap-replay run /out/raw/fsdax-mem-1G-2G/layout.jsonl --strategy martins-compound --threads 1 --repeat 5 --faults none --verify  -o /out/raw/fsdax-mem-1G-2G/replay.run.json --json
