memmap-replay run /out/raw/devdax-mem-1G-2G/layout.jsonl --strategy martins-compound --threads 1 --repeat 5 --faults none --verify  -o /out/raw/devdax-mem-1G-2G/replay.run.json --json
