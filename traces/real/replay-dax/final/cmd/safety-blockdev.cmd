memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 1 --verify --faults none --target /dev/pmem0 -o /out/safety-blockdev.run.json --json
