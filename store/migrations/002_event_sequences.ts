// Per-instrument event counters: appendEvent locks its instrument's row before it numbers an
// event, so concurrent writers (PostgreSQL, READ COMMITTED) cannot pick the same max(sequence)+1,
// and a sequence keeps counting after prune() has removed the instrument's older events.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('event_sequences')
    .addColumn('instrument_id', 'text', (c) => c.primaryKey())
    .addColumn('last_sequence', 'integer', (c) => c.notNull())
    .execute();
  await sql`
    insert into event_sequences (instrument_id, last_sequence)
    select instrument_id, max(sequence) from events group by instrument_id
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('event_sequences').execute();
}
