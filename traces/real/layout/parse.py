#!/usr/bin/env python3
"""parse.py OUTROOT DEST : build kernel-figures.json + raw/ from capture.sh outputs (out/<tag>/guest/cfg/<id>/...).
Only values printed by the kernel (sysfs, trace, dmesg, ndctl JSON that echoes kernel sysfs) are stored; nothing is computed."""
import json, os, re, sys, glob, collections
root, dest = sys.argv[1], sys.argv[2]
tags = sys.argv[3:]
KV = re.compile(r'(\w+)=(\S+)')
def rd(p, default=None):
    try: return open(p, errors='replace').read()
    except FileNotFoundError: return default
def sysfs_map(txt):
    m = {}
    for l in (txt or '').splitlines():
        if ': ' in l or l.endswith(':'):
            k, _, v = l.partition(': ')
            v = v.strip()
            m[k.strip().rstrip(':')] = None if v.startswith('cat:') else v
    return m
def jload(txt):
    if not txt: return None
    i = txt.find('{'); j = txt.find('[')
    starts = [x for x in (i, j) if x >= 0]
    if not starts: return None
    try: return json.loads(txt[min(starts):])
    except Exception:
        try: return json.loads(txt[min(starts):txt.rfind('}')+1])
        except Exception: return None
def trace_events(txt):
    ev = []
    for l in (txt or '').splitlines():
        m = re.match(r'^\s*(\S+)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)$', l)
        if m: ev.append(dict(task=m.group(1), pid=int(m.group(2)), name=m.group(5), rest=m.group(6), line=l.strip()))
    return ev
def parse_hist_blocks(txt):
    """returns list of (trigger, entries) where entries = list of (keytext, hitcount)"""
    out = []
    for blk in re.split(r'(?m)^# event histogram\s*$', txt or '')[1:]:
        trig = re.search(r'# trigger info: (.*)', blk).group(1)
        ents = []
        for e in re.finditer(r'\{(.*?)\}\s*hitcount:\s*(\d+)', blk, re.S):
            ents.append((e.group(1), int(e.group(2))))
        tot = re.search(r'Hits: (\d+)', blk)
        out.append((trig, ents, int(tot.group(1)) if tot else None))
    return out
records = []; raw_total = 0
for tag in tags:
    g = os.path.join(root, tag, 'guest')
    prov = dict(l.split('=', 1) for l in rd(os.path.join(root, tag, 'provenance.txt'), '').splitlines() if '=' in l)
    cfgorder = [l.split()[0] for l in rd(os.path.join(g, '..', '..', tag, 'guest', 'configs.txt'), '').splitlines() if l.strip()] if False else None
    ids = sorted(os.listdir(os.path.join(g, 'cfg')), key=lambda d: os.path.getmtime(os.path.join(g, 'cfg', d)))
    # keep the configs.txt order
    serial = rd(os.path.join(root, tag, 'serial-markers.txt'), '')
    serial_full = (rd(os.path.join(root, tag, 'serial.log'), '') or '').replace('\r', '')
    order = [m.group(1) for m in re.finditer(r'@@CFG (\S+)', serial)]
    ids = [i for i in order if i in ids] + [i for i in ids if i not in order]
    for cid in ids:
        d = os.path.join(g, 'cfg', cid)
        P = dict(KV.findall(rd(os.path.join(d, 'params.txt'), '')))
        rc = int((rd(os.path.join(d, 'create.rc'), '') or '-1').strip() or -1)
        err = (rd(os.path.join(d, 'create.err'), '') or '').strip()
        cj = jload(rd(os.path.join(d, 'create.json')))
        if isinstance(cj, list): cj = cj[0] if cj else None
        dm = rd(os.path.join(d, 'dmesg.txt'), '')
        dm_err = [l.strip() for l in dm.splitlines() if re.search(r'error|fail|misalign|unable|truncat|exceed|mismatch|invalid|BUG|Oops|WARNING|could not', l, re.I) and 'altmap_alloc_block_buf' not in l and 'result: ' not in l]
        dm_dbg = [l.strip() for l in dm.splitlines() if re.search(r'nd_pmem|nd pfn|nd dax|dax_pmem', l) and l.strip()]
        rec = collections.OrderedDict()
        rec['id'] = cid; rec['boot'] = tag; rec['nvdimm_backing_size'] = prov.get('nvsize', '').split()[0].replace('nvsize=', '') or None
        rec['mode'] = P.get('mode'); rec['map'] = None if P.get('map') in (None, '-') else P.get('map')
        al = P.get('align'); rec['align_requested'] = None if al in (None, '-') else al
        rec['requested_size'] = None if P.get('size') in (None, '-') else P.get('size')
        rec['command'] = (rd(os.path.join(d, 'cmd.txt'), '') or '').strip()
        rec['result'] = 'ok' if rc == 0 else (err or f'rc={rc}')
        rec['create_rc'] = rc
        rec['kernel_error_lines'] = dm_err or None
        rec['dmesg_nvdimm_debug_lines'] = dm_dbg or None
        ns = None
        if cj: ns = cj.get('dev')
        rec['namespace'] = ns
        rec['ndctl_create_json'] = cj
        rec['align_bytes'] = (cj or {}).get('align') if isinstance((cj or {}).get('align'), int) else None
        sn = sysfs_map(rd(os.path.join(d, 'sysfs-namespace.txt')))
        rec['namespace_resource_start'] = sn.get(f'{ns}/resource') if ns else None
        rec['namespace_size_bytes'] = int(sn[f'{ns}/size']) if ns and (sn.get(f'{ns}/size') or '').isdigit() else None
        rec['namespace_sysfs_mode'] = sn.get(f'{ns}/mode') if ns else None
        rec['namespace_holder'] = sn.get(f'{ns}/holder') if ns else None
        sp = sysfs_map(rd(os.path.join(d, 'sysfs-pfn.txt')))
        pdev = None
        for k, v in sp.items():
            if k.endswith('/namespace') and v == ns: pdev = k.split('/')[0]
        rec['pfn_device'] = pdev
        rec['pfn_resource_start'] = sp.get(f'{pdev}/resource') if pdev else None
        rec['pfn_size'] = int(sp[f'{pdev}/size']) if pdev and (sp.get(f'{pdev}/size') or '').isdigit() else None
        rec['pfn_align'] = int(sp[f'{pdev}/align']) if pdev and (sp.get(f'{pdev}/align') or '').isdigit() else None
        rec['pfn_mode'] = sp.get(f'{pdev}/mode') if pdev else None
        rec['pfn_supported_alignments'] = sp.get(f'{pdev}/supported_alignments') if pdev else None
        sd = sysfs_map(rd(os.path.join(d, 'sysfs-daxdev.txt')))
        dd = None
        if cj and isinstance(cj.get('daxregion'), dict):
            devs = cj['daxregion'].get('devices') or []
            if devs: dd = devs[0].get('chardev')
        rec['daxdev'] = dd
        rec['daxdev_sysfs'] = {k.split('/', 1)[1]: v for k, v in sd.items() if dd and k.startswith(dd + '/')} or None
        ib = jload(rd(os.path.join(d, 'infoblock.json')))
        ib = ib[0] if isinstance(ib, list) and ib else None
        rec['infoblock'] = {k: ib.get(k) for k in ('signature', 'version', 'dataoff', 'npfns', 'mode', 'start_pad', 'end_trunc', 'align', 'page_size', 'page_struct_size')} if isinstance(ib, dict) and 'dataoff' in ib else None
        sr = sysfs_map(rd(os.path.join(d, 'sysfs-region.txt')))
        rec['region_start'] = sr.get('region0/resource'); rec['region_size'] = int(sr['region0/size']) if sr.get('region0/size', '').isdigit() else None
        rec['region_align'] = sr.get('region0/align')
        rec['region_available_size_after'] = int(sr['region0/available_size']) if sr.get('region0/available_size', '').isdigit() else None
        ev = trace_events(rd(os.path.join(d, 'trace.txt')))
        def first(name): return next((e for e in ev if e['name'] == name), None)
        def args(e): return dict(KV.findall(e['rest'])) if e else None
        mzd = [e for e in ev if e['name'] == 'memmap_init_zone_device' and 'start_pfn=' in e['rest']]
        a = args(mzd[0]) if mzd else None
        rec['kprobe_memmap_init_zone_device_calls'] = len(mzd)
        rec['kprobe_start_pfn'] = a['start_pfn'] if a else None
        rec['kprobe_nr_pages'] = int(a['nr_pages']) if a else None
        rec['kprobe_pgmap_at_memmap_init_zone_device'] = {k: (int(v) if re.fullmatch(r'-?\d+', v) else v) for k, v in a.items() if k not in ('start_pfn', 'nr_pages')} if a else None
        mp = args(first('memremap_pages'))
        rec['kprobe_pgmap_at_memremap_pages'] = {k: (int(v) if re.fullmatch(r'-?\d+', v) else v) for k, v in mp.items()} if mp else None
        for nm, key in (('arch_add_memory', 'kprobe_arch_add_memory'), ('__add_pages', 'kprobe___add_pages'), ('move_pfn_range_to_zone', 'kprobe_move_pfn_range_to_zone')):
            x = args(first(nm)); rec[key] = {k: (int(v) if re.fullmatch(r'-?\d+', v) else v) for k, v in x.items()} if x else None
        for nm in ('nd_pfn_validate_ret', 'nvdimm_setup_pfn_ret', 'pmem_attach_disk_ret', 'memremap_pages_ret', 'dev_dax_probe_ret'):
            x = [args(e).get('ret') for e in ev if e['name'] == nm]
            rec['kretprobe_' + nm.replace('_ret', '')] = x or None
        rec['kprobe_task'] = mzd[0]['task'] + '-' + str(mzd[0]['pid']) if mzd else None
        # dmesg
        mi = re.findall(r'memmap_init_zone_device initialised (\d+) pages in (\d+)ms', dm)
        rec['dmesg_initialised_pages'] = int(mi[0][0]) if mi else None
        rec['dmesg_initialised_ms_TCG'] = int(mi[0][1]) if mi else None
        al_lines = re.findall(r'altmap_alloc_block_buf: pfn: (0x[0-9a-f]+) alloc: (\d+) align: (\d+) nr: (0x[0-9a-f]+)', dm)
        rec['dmesg_altmap_alloc_block_buf_calls'] = len(al_lines) if (mzd or al_lines) else None
        if al_lines:
            rec['dmesg_altmap_first'] = dict(zip(('pfn', 'alloc', 'align', 'nr'), al_lines[0]))
            rec['dmesg_altmap_last'] = dict(zip(('pfn', 'alloc', 'align', 'nr'), al_lines[-1]))
            rec['dmesg_altmap_nr_values'] = dict(collections.Counter(x[3] for x in al_lines))
        else:
            rec['dmesg_altmap_first'] = rec['dmesg_altmap_last'] = rec['dmesg_altmap_nr_values'] = None
        # compound
        hc = parse_hist_blocks(rd(os.path.join(d, 'hist-compound.txt'), ''))
        if hc:
            trig, ents, tot = hc[0]
            rec['compound_calls'] = tot
            rec['compound_nr_pages'] = {re.search(r'nr_pages:\s*(\d+)', k).group(1): v for k, v in ents} or None
        else: rec['compound_calls'] = None; rec['compound_nr_pages'] = None
        ct = rd(os.path.join(d, 'compound.txt'), '')
        heads = re.findall(r'head_pfn=(0x[0-9a-f]+)', ct)
        rec['compound_first_head_pfn'] = heads[0] if heads else None
        rec['compound_last_head_pfn'] = heads[-1] if heads else None
        # vmemmap RAM allocations (mm_page_alloc with __GFP_RETRY_MAYFAIL, keyed by stack)
        hp = parse_hist_blocks(rd(os.path.join(d, 'hist-page-alloc.txt'), ''))
        vm = collections.Counter(); vm_lines = []
        for trig, ents, tot in hp:
            if 'stacktrace' not in trig: continue
            for k, n in ents:
                order = re.search(r'order:\s*(\d+)', k).group(1)
                frames = [f.split('+')[0] for f in re.findall(r'^\s+(\S+)$', k, re.M)]
                # caller of vmemmap_alloc_block (skip the *_alloc_block* helpers)
                caller = next((f for f in frames if not f.startswith('vmemmap_alloc_block')), '?')
                if 'vmemmap_populate_basepages' in frames: path = 'x86 vmemmap_populate->basepages'
                elif 'vmemmap_populate' in frames: path = 'x86 vmemmap_populate->hugepages'
                elif '__populate_section_memmap' in frames and 'vmemmap_populate_address' in frames: path = '__populate_section_memmap->vmemmap_populate_address (vmemmap_populate_compound_pages, inlined)'
                else: path = 'other'
                vm[f'order{order} {caller} [{path}]'] += n
                vm_lines.append(f'order={order} hitcount={n} stack=' + '<-'.join(frames[:6]))
        rec['vmemmap_ram_allocs'] = dict(vm) if (hp and mzd) or vm else ({} if hp and rc == 0 else None)
        # kernel errors printed on the serial console after this config's capture (= during its teardown)
        m = re.search(r'@@MARK END ' + re.escape(cid) + r' .*?\n(.*?)(?=@@MARK BEGIN|@@SCENARIO|\Z)', serial_full, re.S)
        td = [l.strip() for l in (m.group(1) if m else '').splitlines() if re.search(r'BUG:|Oops:|RIP: 0010|WARNING:|Call Trace|^\s*\[\s*[\d.]+\]\s+\w+\+0x', l)]
        rec['teardown_kernel_errors'] = td[:20] or None
        if td:
            ol = (m.group(1)).splitlines()
            i0 = next(i for i, l in enumerate(ol) if re.search(r'BUG:|Oops:|WARNING:', l))
            os.makedirs(os.path.join(dest, 'raw', tag), exist_ok=True)
            open(os.path.join(dest, 'raw', tag, cid + '.teardown-oops.txt'), 'w').write('# serial console after @@MARK END ' + cid + ' (the oops is in ndctl disable-namespace = unbind, i.e. teardown)\n' + '\n'.join(l.rstrip() for l in ol[max(0, i0-2):i0+40]) + '\n')
        rec['iomem'] = [l.rstrip() for l in (rd(os.path.join(d, 'iomem.txt'), '') or '').splitlines()] or None
        rec['raw'] = {
            'memmap_init_zone_device_kprobe': mzd[0]['line'] if mzd else None,
            'memremap_pages_kprobe': first('memremap_pages')['line'] if first('memremap_pages') else None,
            'dmesg_initialised': next((l.strip() for l in dm.splitlines() if 'initialised' in l), None),
        }
        records.append(rec)
        # raw copy
        rdst = os.path.join(dest, 'raw', tag); os.makedirs(rdst, exist_ok=True)
        rfile = os.path.join(rdst, cid + '.txt'); open(rfile, 'w').write(f'# raw captures of config {cid} (boot {tag}); sections = files written in the guest (selected lines, verbatim)\n')
        rec['raw_file'] = os.path.relpath(rfile, dest)
        def put(name, txt):
            global raw_total
            if txt is None: return
            if name in ('create.json',):
                j = jload(txt)
                if j is not None: txt = json.dumps(j, separators=(',', ':')) + '\n'
            if name == 'trace.txt':
                txt = '\n'.join(l for l in txt.splitlines() if 'tracing_mark_write' not in l and 'memremap_pages_ret' not in l and 'memmap_init_zone_device_ret' not in l and ' pmem_attach_disk: ' not in l and ' dev_dax_probe: ' not in l) + '\n'
            if name == 'compound.txt':
                ls = txt.splitlines(); txt = '\n'.join([ls[0], ls[1], '...', ls[-1]] if len(ls) > 4 else ls) + '\n'
            if name == 'sysfs-namespace.txt':
                txt = '\n'.join(l for l in txt.splitlines() if not re.search(r'/(sector_size|force_raw|numa_node|holder_class):', l)) + '\n'
            if name == 'dmesg.txt':
                txt = '\n'.join(l for l in txt.splitlines() if not re.fullmatch(r'\[\s*[\d.]+\]\s*', l)) + '\n'
            if name == 'sysfs-region.txt':
                txt = '\n'.join(l for l in txt.splitlines() if re.search(r'/(resource|size|align|available_size):', l)) + '\n'
            if not txt.endswith('\n'): txt += '\n'
            blk = f'### {name}\n{txt}'
            open(rfile, 'a').write(blk); raw_total += len(blk)
        put('create.json', rd(os.path.join(d, 'create.json')))
        if err: put('create.err', err + '\n')
        put('trace.txt', '\n'.join(l.strip() for l in (rd(os.path.join(d, 'trace.txt'), '') or '').splitlines() if not l.startswith('#')) + '\n')
        if heads: put('compound.txt', ct)
        if hc and hc[0][2]: put('hist-compound.txt', rd(os.path.join(d, 'hist-compound.txt')))
        dl = dm.splitlines(); al_idx = [i for i, l in enumerate(dl) if 'altmap_alloc_block_buf' in l]
        if len(al_idx) > 4:
            keep = set(al_idx[:2] + al_idx[-2:])
            out = []; skipped = False
            for i, l in enumerate(dl):
                if i in al_idx and i not in keep:
                    if not skipped: out.append(f'[... {len(al_idx)-4} further altmap_alloc_block_buf lines trimmed; all {len(al_idx)} lines have nr: {sorted(set(x[3] for x in al_lines))} ...]'); skipped = True
                    continue
                out.append(l)
            dl = out
        put('dmesg.txt', '\n'.join(dl) + '\n')
        if vm_lines: put('vmemmap-ram-allocs.txt', '# mm_page_alloc hist (gfp_flags & __GFP_RETRY_MAYFAIL), stack condensed (callee<-caller), first 6 frames\n' + '\n'.join(vm_lines) + '\n')
        for f in ('sysfs-namespace.txt', 'sysfs-pfn.txt', 'sysfs-region.txt', 'sysfs-daxdev.txt', 'iomem.txt', 'infoblock.json'):
            t = rd(os.path.join(d, f))
            if f == 'sysfs-namespace.txt' and t:   # drop the idle seed namespaces (size 0)
                seeds = {l.split('/')[0] for l in t.splitlines() if l.endswith('/size: 0')}
                t = '\n'.join(l for l in t.splitlines() if l.split('/')[0] not in seeds) + '\n'
            if f == 'infoblock.json' and t:
                j = jload(t); t = '\n'.join(l for l in t.splitlines() if not l.strip().startswith(('[', '{', '"', '}', ']'))) + '\n' + (json.dumps(j) if j is not None else '') + '\n'
            if t and t.strip(): put(f, t)
json.dump(records, open(os.path.join(dest, 'kernel-figures.json'), 'w'), indent=1)
print(f'{len(records)} records, raw bytes {raw_total}')
