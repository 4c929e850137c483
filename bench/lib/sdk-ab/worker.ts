// The worker of `bench:sdk-ab`'s B variants: the product's worker/main.ts, unchanged, in a process
// whose SDK workflow threads are patched at run time (install.ts, thread-patch.js; SDK_AB_VARIANT
// names the patch). Not a product entry point. Benchmark-only (issue 16), never shipped.
import './install';
import '../../../worker/main';
