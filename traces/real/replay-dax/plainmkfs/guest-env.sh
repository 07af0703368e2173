RUN_LIMIT=420
EXT4_OPTS='-b 4096'
XFS_OPTS='-m reflink=0'
STEPS='ext4dax xfsdax'
TRACE_FS_DAX=0
