// The public API of the FPS protocol library. This barrel pulls in node:crypto (signing, client,
// callbacks): workflow code must import the node-free modules directly instead —
// fps/money, fps/actions, fps/errors, fps/caller-reference, fps/ipn, fps/cbui-return.
export * from './actions';
export * from './errors';
export * from './money';
export * from './caller-reference';
export * from './requests';
export * from './xml';
export * from './signature';
export * from './callback-signature';
export * from './callback-verifier';
export * from './client';
export * from './cbui';
export * from './ipn';
