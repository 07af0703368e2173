memmap-replay run qemu-16g --scale 0.0625 --strategy lizhe-nt --repeat 2 --verify --faults none --target /mnt/memmap.bin -o /out/ext4-nodax-lizhe-nt.run.json --json
