// The program loaded the way `pulumi up` loads it: the SDK's own run entry
// (@pulumi/pulumi/cmd/run, what the nodejs language host starts) with the
// settings of Pulumi.yaml (main dist/infra/index.js, typescript: false, no
// nodeargs), talking gRPC to a stand-in for the engine built from the SDK's
// own proto stubs (ResourceMonitor and Engine). The stand-in records each
// RegisterResource request as the engine would receive it: type, name,
// parent, dependencies, provider, retainOnDelete, import id.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const emptyproto = require('google-protobuf/google/protobuf/empty_pb');
const structproto = require('google-protobuf/google/protobuf/struct_pb');
const resproto = require('@pulumi/pulumi/proto/resource_pb');
const resrpc = require('@pulumi/pulumi/proto/resource_grpc_pb');
const enginerpc = require('@pulumi/pulumi/proto/engine_grpc_pb');
const engineproto = require('@pulumi/pulumi/proto/engine_pb');

interface Registration {
  urn: string;
  type: string;
  name: string;
  parent: string;
  custom: boolean;
  dependencies: string[];
  provider: string;
  retainOnDelete: boolean;
  importId: string;
  object: Record<string, any>;
}
const registrations: Registration[] = [];
const logs: string[] = [];
let exit: { code: number | null; stderr: string };

const urnOf = (type: string, name: string, parent: string) =>
  `urn:pulumi:dev::edupulse-db::${parent ? `${parent.split('::')[2]!.split('$').pop()}$` : ''}${type}::${name}`;

test.before(async () => {
  const pulumiYaml = readFileSync(join(PROJECT_ROOT, 'Pulumi.yaml'), 'utf8');
  const main = /^main:\s*(\S+)/m.exec(pulumiYaml)![1]!;
  assert.match(pulumiYaml, /typescript: false/);
  assert.not.match(pulumiYaml, /nodeargs/);
  let root = '';
  const server = new grpc.Server();
  server.addService(resrpc.ResourceMonitorService, {
    supportsFeature(call: any, cb: any) {
      const r = new resproto.SupportsFeatureResponse();
      // As the engine answers for these; output values off keeps inputs plain.
      r.setHassupport(
        ['secrets', 'resourceReferences', 'deletedWith', 'aliasSpecs', 'parameterization'].includes(
          call.request.getId(),
        ),
      );
      cb(null, r);
    },
    registerResource(call: any, cb: any) {
      const q = call.request;
      const object = q.getObject()?.toJavaScript() ?? {};
      const urn = urnOf(q.getType(), q.getName(), q.getParent());
      registrations.push({
        urn,
        type: q.getType(),
        name: q.getName(),
        parent: q.getParent(),
        custom: q.getCustom(),
        dependencies: q.getDependenciesList(),
        provider: q.getProvider(),
        retainOnDelete: q.hasRetainondelete?.() ? q.getRetainondelete() : false,
        importId: q.getImportid(),
        object,
      });
      // What providers would compute and the program reads.
      if (q.getType() === 'random:index/randomPassword:RandomPassword') object.result = `generated-${q.getName()}`;
      if (q.getType() === 'docker:index/remoteImage:RemoteImage') object.imageId = 'sha256:0';
      const r = new resproto.RegisterResourceResponse();
      r.setUrn(urn);
      r.setId(q.getCustom() ? `${q.getName()}-id` : '');
      r.setObject(structproto.Struct.fromJavaScript(object));
      cb(null, r);
    },
    registerResourceOutputs(_call: any, cb: any) {
      cb(null, new emptyproto.Empty());
    },
    registerPackage(_call: any, cb: any) {
      const r = new resproto.RegisterPackageResponse();
      r.setRef('pkg');
      cb(null, r);
    },
    signalAndWaitForShutdown(_call: any, cb: any) {
      cb(null, new emptyproto.Empty());
    },
  });
  server.addService(enginerpc.EngineService, {
    log(call: any, cb: any) {
      logs.push(call.request.getMessage());
      cb(null, new emptyproto.Empty());
    },
    getRootResource(_call: any, cb: any) {
      const r = new engineproto.GetRootResourceResponse();
      r.setUrn(root);
      cb(null, r);
    },
    setRootResource(call: any, cb: any) {
      root = call.request.getUrn();
      cb(null, new engineproto.SetRootResourceResponse());
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e: Error | null, p: number) =>
      e ? rej(e) : res(p),
    ),
  );
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_OPTIONS: undefined,
    // What the language host sets from Pulumi.yaml's options and the stack's config.
    PULUMI_NODEJS_TYPESCRIPT: 'false',
    PULUMI_CONFIG: JSON.stringify({ 'edupulse:postgresPort': '55432', 'edupulse:repoDir': '/srv/edupulse/repo' }),
    PULUMI_CONFIG_SECRET_KEYS: '[]',
  };
  const child = spawn(
    process.execPath,
    [
      join(PROJECT_ROOT, 'node_modules/@pulumi/pulumi/cmd/run'),
      `--monitor=127.0.0.1:${port}`,
      `--engine=127.0.0.1:${port}`,
      '--project=edupulse-db',
      '--stack=dev',
      '--organization=organization',
      `--root-directory=${PROJECT_ROOT}`,
      `--pwd=${PROJECT_ROOT}`,
      main,
    ],
    { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  exit = await new Promise((res) => child.on('close', (code) => res({ code, stderr })));
  server.forceShutdown();
});

const find = (type: string, name?: string) =>
  registrations.find((r) => r.type === type && (name === undefined || r.name === name));

test("the run entry loads the compiled program with Pulumi.yaml's settings and it completes", () => {
  assert.is(exit.code, 0, `${exit.stderr}\n${logs.join('\n')}`);
  assert.ok(find('pulumi:pulumi:Stack'), 'the stack resource');
  assert.ok(registrations.length > 40, `${registrations.length} resources registered`);
});

test('the engine receives the edges: provider after the superuser password and the container, migrations after the roles, grants after the objects', () => {
  const provider = find('pulumi:providers:postgresql')!;
  const superuser = find('pulumi-nodejs:dynamic:Resource', 'postgres-superuser')!;
  const container = registrations.find(
    (r) => r.type === 'docker:index/container:Container' && r.name.endsWith('-postgres'),
  )!;
  assert.ok(
    provider.dependencies.includes(superuser.urn) && provider.dependencies.includes(container.urn),
    provider.dependencies.join(', '),
  );
  assert.ok(superuser.dependencies.includes(container.urn));
  const migrations = find('pulumi-nodejs:dynamic:Resource', 'migrations')!;
  for (const role of registrations.filter((r) => r.type === 'postgresql:index/role:Role')) {
    assert.ok(migrations.dependencies.includes(role.urn), `migrations after ${role.name}`);
    assert.ok(role.provider.startsWith(provider.urn), `${role.name} uses the provider`);
  }
  const objects = find('pulumi-nodejs:dynamic:Resource', 'indexes-and-views')!;
  assert.ok(objects.dependencies.includes(migrations.urn));
  const tableGrant = registrations.find(
    (r) => r.type === 'postgresql:index/grant:Grant' && r.object.objectType === 'table',
  )!;
  assert.ok(tableGrant.dependencies.includes(objects.urn));
  const db = find('postgresql:index/database:Database')!;
  assert.is(db.retainOnDelete, true, 'retainOnDelete reaches the engine');
});

test("the dynamic resources' serialized providers, as the engine stores them, name no checkout path", () => {
  for (const name of ['migrations', 'indexes-and-views', 'postgres-superuser']) {
    const text = JSON.stringify(find('pulumi-nodejs:dynamic:Resource', name)!.object.__provider);
    assert.ok(text.length > 100, `${name} carries its provider`);
    assert.not.ok(text.includes(PROJECT_ROOT), `${name}: no checkout path`);
  }
});

test.run();
