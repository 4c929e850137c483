// The workflows a worker registers (workflowsPath points here).
export { instrumentWorkflow } from './instrument';
