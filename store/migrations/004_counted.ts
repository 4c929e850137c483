// `counted_at`: when the workflow acknowledged that its durable state counts the operation. A money
// activity writes its row before the workflow task that applies the answer is durable; if that task
// is lost (a worker crash, a Temporal or database restart), the row names an operation the workflow
// never counted. The workflow acknowledges rows in batches through a scheduled activity (its command
// commits with the task that counted them) before it forgets their ids, and trusts only counted rows
// when it looks up an id beyond its window. Rows written before this migration were counted by the
// workflows that wrote them: they take their last write's time.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('operations').addColumn('counted_at', 'bigint').execute();
  await sql`update operations set counted_at = updated_at`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('operations').dropColumn('counted_at').execute();
}
