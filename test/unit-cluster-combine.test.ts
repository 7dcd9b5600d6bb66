// Cluster-wide answers from the nodes' own (src/cluster/combine.ts): sums,
// -1 only when no node has the group, "yes" if any node; an answer of the
// wrong shape counts as no answer.

import t from 'tap';
import { combineGroup, combineOnline, combineSystem } from '../src/cluster/combine';

const peers = (answers: unknown[], asked = answers.length) => ({ asked, answers });

t.test('system sums every count of the nodes that answered', async (t) => {
  const mine = { cpuNum: 2, goroutineNum: 5, clientNum: 10, groupNum: 4 };
  t.same(combineSystem(mine, peers([{ cpuNum: 4, goroutineNum: 7, clientNum: 1, groupNum: 1 }], 3)),
    { cpuNum: 6, goroutineNum: 12, clientNum: 11, groupNum: 5, nodes: 4, nodesAnswered: 2 });
  t.same(combineSystem(mine, peers([{ cpuNum: 4 }, null, 'x', { cpuNum: 1, goroutineNum: 1, clientNum: 1.5, groupNum: 1 }])),
    { ...mine, nodes: 5, nodesAnswered: 1 }, 'answers of the wrong shape are not counted');
  t.same(combineSystem(mine, peers([])), { ...mine, nodes: 1, nodesAnswered: 1 }, 'alone');
});

t.test('group: -1 only when no node that answered has it', async (t) => {
  t.same(combineGroup({ clientNum: -1 }, peers([{ clientNum: -1 }, { clientNum: -1 }])), { clientNum: -1, nodes: 3, nodesAnswered: 3 });
  t.same(combineGroup({ clientNum: -1 }, peers([{ clientNum: 2 }, { clientNum: -1 }, { clientNum: 3 }])), { clientNum: 5, nodes: 4, nodesAnswered: 4 });
  t.same(combineGroup({ clientNum: 1 }, peers([{ clientNum: -1 }], 2)), { clientNum: 1, nodes: 3, nodesAnswered: 2 });
  t.same(combineGroup({ clientNum: 0 }, peers([{ clientNum: -7 }, { clientNum: '3' }])), { clientNum: 0, nodes: 3, nodesAnswered: 1 }, 'bad counts are no answer');
});

t.test('isOnline: yes if any node says yes', async (t) => {
  t.same(combineOnline({ result: 'no' }, peers([{ result: 'no' }, { result: 'yes' }])), { result: 'yes', nodes: 3, nodesAnswered: 3 });
  t.same(combineOnline({ result: 'no' }, peers([{ result: 'no' }, { result: 'YES' }])), { result: 'no', nodes: 3, nodesAnswered: 2 });
  t.same(combineOnline({ result: 'yes' }, peers([], 2)), { result: 'yes', nodes: 3, nodesAnswered: 1 });
});
