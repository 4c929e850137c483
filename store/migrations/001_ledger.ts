// The record's first schema: operations keyed by CallerReference, verified callbacks, the event outbox.
import { PostgresAdapter, type Kysely } from 'kysely';

/** An auto-increment integer key, spelled the way each engine wants it. */
function serial(db: Kysely<unknown>): 'integer' | 'bigserial' {
  return isPostgres(db) ? 'bigserial' : 'integer';
}

function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('operations')
    .addColumn('caller_reference', 'text', (c) => c.primaryKey())
    .addColumn('instrument_id', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('instrument_type', 'text', (c) => c.notNull())
    .addColumn('operation', 'text', (c) => c.notNull())
    .addColumn('operation_id', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('transaction_id', 'text')
    .addColumn('refunded_amount', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('decline_code', 'text')
    .addColumn('decline_reason', 'text')
    .addColumn('parent_operation_id', 'text')
    .addColumn('description', 'text')
    .addColumn('opened_by', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('operations_instrument_operation_id', ['instrument_id', 'operation', 'operation_id'])
    .execute();
  await db.schema
    .createIndex('operations_instrument_time')
    .on('operations')
    .columns(['instrument_id', 'created_at'])
    .execute();
  await db.schema
    .createIndex('operations_customer_time')
    .on('operations')
    .columns(['customer_id', 'created_at'])
    .execute();

  const callbacks = db.schema.createTable('callbacks');
  await (
    isPostgres(db)
      ? callbacks.addColumn('id', serial(db), (c) => c.primaryKey())
      : callbacks.addColumn('id', serial(db), (c) => c.primaryKey().autoIncrement())
  )
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('instrument_id', 'text')
    .addColumn('caller_reference', 'text')
    .addColumn('transaction_id', 'text')
    .addColumn('status', 'text')
    .addColumn('parameters', 'text', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('callbacks_caller_reference').on('callbacks').column('caller_reference').execute();

  const events = db.schema.createTable('events');
  await (
    isPostgres(db)
      ? events.addColumn('seq', serial(db), (c) => c.primaryKey())
      : events.addColumn('seq', serial(db), (c) => c.primaryKey().autoIncrement())
  )
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('instrument_id', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('sequence', 'integer', (c) => c.notNull())
    .addColumn('event_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addUniqueConstraint('events_instrument_sequence', ['instrument_id', 'sequence'])
    .addUniqueConstraint('events_instrument_key', ['instrument_id', 'event_key'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('events').execute();
  await db.schema.dropTable('callbacks').execute();
  await db.schema.dropTable('operations').execute();
}
