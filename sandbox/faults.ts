// Fault injection for chaos tests: a queue of faults that the next matching Query API requests
// suffer — an error answer, a delay, or a dropped connection after the work was done.
import { z } from 'zod';
import { isFpsAction } from '../fps/actions';

const count = z.number().int().positive().default(1);
/** Only requests for these actions are hit; all actions when absent. */
const actions = z
  .array(z.string().refine(isFpsAction, { message: 'not an FPS action' }))
  .nonempty()
  .optional();

export const FaultSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('error'),
    /** Any FPS error code; InternalError (500), ServiceUnavailable and Throttling (503) are the transient ones. */
    code: z
      .string()
      .regex(/^[A-Za-z_]{2,64}$/)
      .default('InternalError'),
    message: z.string().max(500).optional(),
    count,
    actions,
  }),
  /** Waits, then processes the request normally. */
  z.strictObject({ kind: z.literal('delay'), ms: z.number().int().min(0).max(120_000), count, actions }),
  /** Processes the request fully (money moves), then destroys the socket without answering. */
  z.strictObject({ kind: z.literal('drop'), count, actions }),
]);
export type FaultSpec = z.infer<typeof FaultSchema>;
export type Fault = FaultSpec & { id: number };

/** One fault or a list of them, as POST /admin/faults and SANDBOX_FAULTS take them. */
export const FaultListSchema = z.union([FaultSchema.transform((f) => [f]), z.array(FaultSchema)]);

/** Parses SANDBOX_FAULTS; throws with the reason when it is not valid. */
export function parseFaultsEnv(raw: string): FaultSpec[] {
  if (!raw.trim()) return [];
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new Error(`SANDBOX_FAULTS is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const parsed = FaultListSchema.safeParse(json);
  if (!parsed.success) throw new Error(`SANDBOX_FAULTS is invalid: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export class FaultQueue {
  #faults: Fault[] = [];
  #nextId = 1;

  add(specs: readonly FaultSpec[]): Fault[] {
    const added = specs.map((spec) => ({ ...spec, id: this.#nextId++ }));
    this.#faults.push(...added);
    return added;
  }

  clear(): number {
    const removed = this.#faults.length;
    this.#faults = [];
    return removed;
  }

  list(): Fault[] {
    return this.#faults.map((f) => ({ ...f }));
  }

  /** The first queued fault that applies to `action`, using up one of its count. */
  take(action: string): Fault | undefined {
    const index = this.#faults.findIndex((f) => !f.actions || (f.actions as string[]).includes(action));
    if (index < 0) return undefined;
    const fault = this.#faults[index];
    fault.count -= 1;
    if (fault.count <= 0) this.#faults.splice(index, 1);
    return { ...fault };
  }
}
