// One shared Pulumi mocks setup (uvu loads a file's tests into one process;
// our runner gives every test file its own, so each file sets its mocks once,
// before the program is imported). Records every resource the program makes.
import * as pulumi from '@pulumi/pulumi';

export interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, any>;
}

/** A resource's options as the program gave them, with resources named: the graph's edges. */
export interface RecordedOptions {
  type: string;
  dependsOn: string[];
  parent?: string;
  provider?: string;
  retainOnDelete?: boolean;
  protect?: boolean;
  import?: string;
  ignoreChanges?: string[];
}

/**
 * Records every resource's options through a stack transformation (run by the
 * SDK for each resource before it registers), so tests assert the graph's
 * edges (dependsOn, parent) rather than the order of registration.
 */
export function recordOptions(): Map<string, RecordedOptions> {
  const names = new WeakMap<object, string>();
  const out = new Map<string, RecordedOptions>();
  const nameOf = (r: unknown) => (r && typeof r === 'object' ? (names.get(r) ?? '?') : String(r));
  pulumi.runtime.registerStackTransformation((args) => {
    names.set(args.resource, args.name);
    const o = args.opts as pulumi.CustomResourceOptions;
    const deps = o.dependsOn === undefined ? [] : Array.isArray(o.dependsOn) ? o.dependsOn : [o.dependsOn];
    out.set(args.name, {
      type: args.type,
      dependsOn: (deps as unknown[]).map(nameOf),
      parent: o.parent ? nameOf(o.parent) : undefined,
      provider: o.provider ? nameOf(o.provider) : undefined,
      retainOnDelete: o.retainOnDelete,
      protect: o.protect,
      import: o.import,
      ignoreChanges: o.ignoreChanges,
    });
    return undefined;
  });
  return out;
}

/** Whether `from` waits for `to`: a direct or transitive dependsOn, or through the provider it uses. */
export function waitsFor(
  graph: Map<string, RecordedOptions>,
  from: string,
  to: string,
  seen = new Set<string>(),
): boolean {
  const o = graph.get(from);
  if (!o || seen.has(from)) return false;
  seen.add(from);
  const next = [...o.dependsOn, ...(o.provider ? [o.provider] : [])];
  return next.includes(to) || next.some((n) => waitsFor(graph, n, to, seen));
}

export function mockProgram(
  config: Record<string, string>,
  secretKeys: string[] = [],
  opts: { preview?: boolean; unknown?: (type: string) => boolean } = {},
): Recorded[] {
  const recorded: Recorded[] = [];
  pulumi.runtime.setAllConfig(config, secretKeys);
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        recorded.push({ type: args.type, name: args.name, inputs: args.inputs });
        // Mocks compute no provider outputs: give the ones the program reads.
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type === 'random:index/randomPassword:RandomPassword') state.result = `mock-password-for-${args.name}`;
        if (args.type === 'docker:index/remoteImage:RemoteImage') state.imageId = `sha256:mock-${args.name}`;
        if (args.type === 'docker:index/container:Container') state.networkDatas = [{ ipAddress: '172.18.0.2' }];
        // A preview: outputs of these resources are not known yet (the engine's unknown sentinel).
        if (opts.unknown?.(args.type)) for (const k of Object.keys(state)) state[k] = undefined;
        return { id: opts.preview ? '' : `${args.name}-id`, state };
      },
      call(args) {
        return args.inputs;
      },
    },
    'edupulse-db',
    'dev',
    opts.preview ?? false,
  );
  return recorded;
}

/** Imports the program inside a stack resource (as the language host runs it), recording every resource's options. */
export async function loadProgram(
  path: string,
  recorded: Recorded[],
): Promise<{ program: Record<string, any>; graph: Map<string, RecordedOptions> }> {
  let graph = new Map<string, RecordedOptions>();
  let program: Record<string, any> = {};
  await (
    pulumi.runtime as unknown as { runInPulumiStack(f: () => Promise<unknown>): Promise<unknown> }
  ).runInPulumiStack(async () => {
    graph = recordOptions();
    program = await import(path);
    return program;
  });
  await settle(recorded);
  return { program, graph };
}

/** Resolves an output's value and whether it is secret, with a timeout (never hang on an unknown). */
export async function resolve<T>(o: pulumi.Output<T>, ms = 5000): Promise<{ value: T; secret: boolean }> {
  const value = new Promise<T>((res) =>
    o.apply((v) => {
      res(v);
      return v;
    }),
  );
  const secret = pulumi.isSecret(o);
  return {
    value: await Promise.race([
      value,
      new Promise<T>((_, rej) => setTimeout(() => rej(new Error('output did not resolve')), ms)),
    ]),
    secret: await secret,
  };
}

/** Waits until registrations stop arriving. */
export async function settle(recorded: Recorded[]): Promise<void> {
  let n = -1;
  while (n !== recorded.length) {
    n = recorded.length;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A mocked input as plain data: secrets arrive wrapped ({ <sig>: ..., value }). */
export function plain(v: any): any {
  if (v && typeof v === 'object' && '4dabf18193072939515e22adb298388d' in v) return plain(v.value);
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** Whether a mocked input was a secret. */
export const wasSecret = (v: any) => Boolean(v && typeof v === 'object' && '4dabf18193072939515e22adb298388d' in v);
