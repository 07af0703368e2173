memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 1 --verify --faults none --target /dev/dax0.0 -o /out/safety-devdax-records.run.json --json
