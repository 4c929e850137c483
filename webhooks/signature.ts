// The webhook signature lives once, in the merchant client (client/signature.ts): the deliverer
// signs with the same code receivers verify with.
export * from '../client/signature';
