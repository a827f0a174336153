// The table lists a start reads instead of running iptables-save and nft: /proc's legacy names and
// nf_tables' GETTABLE replies (the real dump is exercised by the mode-switch e2e test).
import t from 'tap'
import { AttrWriter } from '../../pkg/netlink/wire.js'
import { legacyTableNames, tableNames } from '../../pkg/proxy/tables-in-use.js'

t.test('legacy names: one per line, blank lines ignored', async t => {
  t.same([...legacyTableNames('nat\nfilter\n')], ['nat', 'filter'])
  t.same([...legacyTableNames('')], [], 'module not loaded or no table yet')
})

t.test('nf_tables replies: each table\'s NFTA_TABLE_NAME, other attributes skipped', async t => {
  const table = (name: string): Buffer => new AttrWriter().string(1, name).u32(2, 0).u32(3, 7).finish()
  t.same([...tableNames([table('nat'), table('ferry'), table('filter')])], ['nat', 'ferry', 'filter'])
  t.same([...tableNames([])], [])
  t.throws(() => tableNames([new AttrWriter().u32(2, 0).finish()]), /table name is missing/, 'a reply without a name is malformed')
})
