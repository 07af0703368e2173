memmap-replay run qemu-16g --scale 0.0625 --strategy lizhe-nt --repeat 2 --verify --faults none --target /dev/dax0.0 -o /out/devdax-lizhe-nt.run.json --json --destroy-data
