#!/usr/bin/env python3
"""tools/check_meta.py: check META.json against the PGXN Meta Spec 1.0.0
(https://pgxn.org/spec/) and against es_ledger.control.

Checks the required keys and their types, the semantic versions, the license
names the spec knows, that every provided extension names a file that
exists, and that the distribution's and es_ledger's versions equal the
control file's default_version.  Prints "META.json ok" or each problem, and
exits 1 on any problem.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEMVER = re.compile(r'^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)'
                    r'(-[0-9A-Za-z-]+)?$')
LICENSES = {'agpl_3', 'apache_1_1', 'apache_2_0', 'artistic_1', 'artistic_2',
            'bsd', 'freebsd', 'gfdl_1_2', 'gfdl_1_3', 'gpl_1', 'gpl_2',
            'gpl_3', 'lgpl_2_1', 'lgpl_3_0', 'mit', 'mozilla_1_0',
            'mozilla_1_1', 'openssl', 'perl_5', 'postgresql', 'qpl_1_0',
            'ssleay', 'sun', 'zlib', 'open_source', 'restricted',
            'unrestricted', 'unknown'}
STATUS = {'stable', 'testing', 'unstable'}
problems = []


def need(cond, msg):
    if not cond:
        problems.append(msg)


def control_version(path):
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*default_version\s*=\s*'([^']*)'", line)
            if m:
                return m.group(1)
    return None


def main():
    try:
        with open(os.path.join(ROOT, 'META.json')) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        print('META.json: %s' % e)
        return 1
    need(isinstance(meta, dict), 'META.json is not an object')
    for key in ('name', 'version', 'abstract', 'maintainer', 'license',
                'provides', 'meta-spec'):
        need(key in meta, 'missing required key "%s"' % key)
    if problems:
        print('\n'.join(problems))
        return 1
    need(isinstance(meta['name'], str) and
         re.match(r'^[A-Za-z0-9][A-Za-z0-9_-]*$', meta['name']) is not None,
         'name must be a word (letters, digits, "_", "-")')
    need(isinstance(meta['abstract'], str) and meta['abstract'],
         'abstract must be a non-empty string')
    need(isinstance(meta['version'], str) and SEMVER.match(meta['version']),
         'version "%s" is not a semantic version' % meta['version'])
    mnt = meta['maintainer']
    need(isinstance(mnt, str) or
         (isinstance(mnt, list) and mnt and all(isinstance(x, str) for x in mnt)),
         'maintainer must be a string or a non-empty list of strings')
    lic = meta['license']
    names = [lic] if isinstance(lic, str) else \
        (list(lic.keys()) if isinstance(lic, dict) else
         (lic if isinstance(lic, list) else []))
    need(names and (isinstance(lic, dict) or all(n in LICENSES for n in names)),
         'license %r is not one the spec names' % (lic,))
    spec = meta['meta-spec']
    need(isinstance(spec, dict) and spec.get('version') == '1.0.0',
         'meta-spec.version must be "1.0.0"')
    if 'release_status' in meta:
        need(meta['release_status'] in STATUS,
             'release_status must be one of %s' % sorted(STATUS))
    prov = meta['provides']
    need(isinstance(prov, dict) and prov, 'provides must be a non-empty object')
    for ext, p in (prov.items() if isinstance(prov, dict) else []):
        need(isinstance(p, dict), 'provides.%s must be an object' % ext)
        if not isinstance(p, dict):
            continue
        need('file' in p and 'version' in p,
             'provides.%s needs "file" and "version"' % ext)
        need(SEMVER.match(str(p.get('version', ''))) is not None,
             'provides.%s.version is not a semantic version' % ext)
        for k in ('file', 'docfile'):
            if k in p:
                need(os.path.isfile(os.path.join(ROOT, p[k])),
                     'provides.%s.%s: no file %s' % (ext, k, p[k]))
    for k in ('prereqs', 'resources', 'no_index'):
        if k in meta:
            need(isinstance(meta[k], dict), '%s must be an object' % k)
    if 'tags' in meta:
        need(isinstance(meta['tags'], list) and
             all(isinstance(t, str) and 0 < len(t) < 256 for t in meta['tags']),
             'tags must be a list of short strings')

    ctl = control_version(os.path.join(ROOT, 'es_ledger.control'))
    need(ctl is not None, 'es_ledger.control has no default_version')
    need(meta['version'] == ctl,
         'version %s differs from es_ledger.control default_version %s'
         % (meta['version'], ctl))
    ext = prov.get('es_ledger') if isinstance(prov, dict) else None
    need(isinstance(ext, dict), 'provides has no es_ledger')
    if isinstance(ext, dict):
        need(ext.get('version') == ctl,
             'provides.es_ledger.version %s differs from default_version %s'
             % (ext.get('version'), ctl))
        need(ext.get('file') == 'sql/es_ledger--%s.sql' % ctl,
             'provides.es_ledger.file should be sql/es_ledger--%s.sql' % ctl)

    if problems:
        print('\n'.join('META.json: ' + p for p in problems))
        return 1
    print('META.json ok (version %s = es_ledger.control)' % ctl)
    return 0


if __name__ == '__main__':
    sys.exit(main())
