memmap-replay run qemu-16g --scale 0.0625 --strategy duyck --repeat 1 --verify --faults none --target /mnt/fsimg.bin -o /out/safety-file-ext4img.run.json --json
