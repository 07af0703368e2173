memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 2 --verify --faults none --target /dev/dax0.0 -o /out/devdax-duyck.run.json --json --destroy-data
