/**
 * A module resolve hook (registered by tfjs.ts with `module.register`) that lets Node load tfjs-core's
 * `dist/register_all_gradients.js`: tfjs-core ships its gradient definitions only as ES modules with
 * extensionless relative imports (`'./gradients/Abs_grad'`), which bundlers accept and Node does not. The
 * `@tensorflow/tfjs` package imports that file for its users; it is not installed here, so the bench loads it
 * itself. Only relative imports from inside @tensorflow packages are retried, with `.js` then `/index.js`.
 */
type Resolve = (specifier: string, context: { parentURL?: string }) => Promise<unknown>;

export async function resolve(
  specifier: string,
  context: { parentURL?: string },
  next: Resolve,
): Promise<unknown> {
  try {
    return await next(specifier, context);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const retry =
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_UNSUPPORTED_DIR_IMPORT') &&
      specifier.startsWith('.') &&
      context.parentURL?.includes('/@tensorflow/');
    if (!retry) throw e;
    try {
      return await next(`${specifier}.js`, context);
    } catch {
      return next(`${specifier}/index.js`, context);
    }
  }
}
