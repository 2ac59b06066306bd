/**
 * A module resolve hook (node:module register) for plugins: `import … from 'mse'` in a plugin always
 * means the mse that is loading it — wherever the plugin file lives (a project without mse installed,
 * /tmp) — so its define* functions and the registries it joins are this process's own.
 */
let index: string | undefined;

export function initialize(data: { index: string }): void {
  index = data.index;
}

type Next = (specifier: string, context: unknown) => Promise<{ url: string }>;

export async function resolve(
  specifier: string,
  context: unknown,
  next: Next,
): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === 'mse' && index) return { url: index, shortCircuit: true };
  return next(specifier, context);
}
