memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 1 --verify --faults none --target /mnt/holds-data.bin -o /out/safety-file-random.run.json --json
