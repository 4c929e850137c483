// The SQLite statement cache (store/db.ts): one prepared statement per SQL text, answers unchanged.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { withStatementCache } from '../../store/db';

describe('SQLite statement cache', () => {
  function counted() {
    const raw = new Database(':memory:');
    let prepares = 0;
    const prepare = raw.prepare.bind(raw);
    raw.prepare = ((source: string) => {
      prepares++;
      return prepare(source);
    }) as typeof raw.prepare;
    return { db: withStatementCache(raw), raw, prepares: () => prepares };
  }

  it('prepares a SQL text once and answers every execution with its own parameters', () => {
    const { db, prepares } = counted();
    db.exec('create table t (id integer primary key, v text)');
    for (let i = 1; i <= 50; i++) db.prepare('insert into t (id, v) values (?, ?)').run(i, `v${i}`);
    const rows = [7, 13, 50].map((id) => db.prepare('select v from t where id = ?').get(id) as { v: string });
    assert.deepEqual(rows, [{ v: 'v7' }, { v: 'v13' }, { v: 'v50' }]);
    assert.equal(prepares(), 2);
  });

  it('a cached statement sees a column added after it was prepared', () => {
    const { db } = counted();
    db.exec('create table t (id integer primary key)');
    db.prepare('insert into t (id) values (?)').run(1);
    assert.deepEqual(db.prepare('select * from t').all(), [{ id: 1 }]);
    db.exec("alter table t add column note text default 'x'");
    assert.deepEqual(db.prepare('select * from t').all(), [{ id: 1, note: 'x' }]);
  });

  it('a statement read to the end with iterate can run again', () => {
    const { db } = counted();
    db.exec('create table t (id integer primary key)');
    for (let i = 1; i <= 3; i++) db.prepare('insert into t (id) values (?)').run(i);
    const ids = () => [...db.prepare('select id from t order by id').iterate()].map((r) => (r as { id: number }).id);
    assert.deepEqual(ids(), [1, 2, 3]);
    assert.deepEqual(ids(), [1, 2, 3]);
  });

  it('stays bounded: beyond 256 texts the oldest is prepared again when next used', () => {
    const { db, prepares } = counted();
    for (let i = 0; i <= 256; i++) db.prepare(`select ${i} as n`).get();
    assert.equal(prepares(), 257);
    db.prepare('select 256 as n').get(); // the newest is still cached
    assert.equal(prepares(), 257);
    assert.deepEqual(db.prepare('select 0 as n').get(), { n: 0 }); // the oldest was dropped
    assert.equal(prepares(), 258);
  });
});
