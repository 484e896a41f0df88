// The ops layer's one way to the settings: every EDUPULSE_* variable parsed
// by infra/settings.ts (the same parser the Pulumi program uses), a bad or
// unknown one turned into bad input (exit 2) before anything is touched.
import { loadSettings, SettingsError, type Settings } from '../../infra/settings.ts';
import { badInput } from './errors.ts';

type Env = Readonly<Record<string, string | undefined>>;

export function settingsFromEnv(env: Env = process.env): Settings {
  try {
    return loadSettings(env);
  } catch (err) {
    if (err instanceof SettingsError) {
      throw badInput(
        `invalid setting ${err.message}`,
        `fix or unset ${err.variable}; the settings are listed in the README`,
      );
    }
    throw err;
  }
}
