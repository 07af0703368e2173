#!/usr/bin/env python3
import json, sys
r = json.load(open(sys.argv[1]))
def g(d, k): return (d or {}).get(k)
print("| boot | id | result | ns start | ns size | pfn/dax resource | pfn size | kprobe start_pfn | kprobe nr_pages | altmap base/reserve/free/align/alloc at init | vmemmap_shift | dmesg initialised N | compound calls {nr_pages: n} | altmap 2M blocks (dmesg) | RAM vmemmap allocs (order: n) | infoblock dataoff/start_pad/end_trunc |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for x in r:
    pg = x['kprobe_pgmap_at_memmap_init_zone_device']
    alt = f"{g(pg,'base_pfn')}/{g(pg,'reserve')}/{g(pg,'free')}/{g(pg,'align')}/{g(pg,'alloc')}" if pg else ''
    vm = x['vmemmap_ram_allocs']
    vms = ''
    if vm:
        agg = {}
        for k, n in vm.items():
            o = k.split()[0]; agg[o] = agg.get(o, 0) + n
        vms = ', '.join(f'{k}: {v}' for k, v in sorted(agg.items()))
    elif vm == {}: vms = '0'
    ib = x['infoblock']
    ibs = f"{ib['dataoff']}/{ib['start_pad']}/{ib['end_trunc']}" if ib else ''
    res = x['result'] if x['result'] == 'ok' else x['result'].replace('|', '/').replace('\n', ' ')[:90]
    if x['kernel_error_lines']: res += ' ; kernel: ' + ' / '.join(l.split('] ', 1)[-1] for l in x['kernel_error_lines'])[:160]
    comp = f"{x['compound_calls']} {json.dumps(x['compound_nr_pages'])}" if x['compound_calls'] else (str(x['compound_calls']) if x['compound_calls'] is not None else '')
    altb = str(x['dmesg_altmap_alloc_block_buf_calls']) if x['dmesg_altmap_alloc_block_buf_calls'] is not None else ''
    print(f"| {x['boot']} | {x['id']} | {res} | {x['namespace_resource_start'] or ''} | {x['namespace_size_bytes'] or ''} | {x['pfn_resource_start'] or ''} | {'' if x['pfn_size'] is None else x['pfn_size']} | {x['kprobe_start_pfn'] or ''} | {x['kprobe_nr_pages'] or ''} | {alt} | {g(pg,'vmemmap_shift') if pg else ''} | {'' if x['dmesg_initialised_pages'] is None else x['dmesg_initialised_pages']} | {comp} | {altb} | {vms} | {ibs} |")
