memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 1 --verify --faults none --target /mnt/kept.bin --keep-target -o /out/safety-kept-create.run.json --json
