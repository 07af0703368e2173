memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 2 --verify --faults none --target /mnt/memmap.bin -o /out/ext4-dax-duyck.run.json --json
