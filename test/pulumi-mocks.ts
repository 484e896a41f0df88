// One shared Pulumi mocks setup (uvu loads a file's tests into one process;
// our runner gives every test file its own, so each file sets its mocks once,
// before the program is imported). Records every resource the program makes.
import * as pulumi from '@pulumi/pulumi';

export interface Recorded { type: string; name: string; inputs: Record<string, any> }

export function mockProgram(config: Record<string, string>, secretKeys: string[] = []): Recorded[] {
  const recorded: Recorded[] = [];
  pulumi.runtime.setAllConfig(config, secretKeys);
  pulumi.runtime.setMocks({
    newResource(args) {
      recorded.push({ type: args.type, name: args.name, inputs: args.inputs });
      // Mocks compute no provider outputs: give the ones the program reads.
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === 'random:index/randomPassword:RandomPassword') state.result = `mock-password-for-${args.name}`;
      if (args.type === 'docker:index/remoteImage:RemoteImage') state.imageId = `sha256:mock-${args.name}`;
      if (args.type === 'docker:index/container:Container') state.networkDatas = [{ ipAddress: '172.18.0.2' }];
      return { id: `${args.name}-id`, state };
    },
    call(args) { return args.inputs; },
  }, 'edupulse-db', 'dev', false);
  return recorded;
}

/** Resolves an output's value and whether it is secret, with a timeout (never hang on an unknown). */
export async function resolve<T>(o: pulumi.Output<T>, ms = 5000): Promise<{ value: T; secret: boolean }> {
  const value = new Promise<T>((res) => o.apply((v) => { res(v); return v; }));
  const secret = pulumi.isSecret(o);
  return { value: await Promise.race([value, new Promise<T>((_, rej) => setTimeout(() => rej(new Error('output did not resolve')), ms))]), secret: await secret };
}

/** Waits until registrations stop arriving. */
export async function settle(recorded: Recorded[]): Promise<void> {
  let n = -1;
  while (n !== recorded.length) { n = recorded.length; await new Promise((r) => setTimeout(r, 200)); }
}

/** A mocked input as plain data: secrets arrive wrapped ({ <sig>: ..., value }). */
export function plain(v: any): any {
  if (v && typeof v === 'object' && '4dabf18193072939515e22adb298388d' in v) return plain(v.value);
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** Whether a mocked input was a secret. */
export const wasSecret = (v: any) => Boolean(v && typeof v === 'object' && '4dabf18193072939515e22adb298388d' in v);
