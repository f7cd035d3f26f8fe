// Lint rules for flowvae's TypeScript: typescript-eslint's recommended set,
// with the few exceptions the code base needs (each says why).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-*/', 'prebuilds/', 'node_modules/', 'coverage/', 'bench/results/', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Unused names are compile errors already (noUnusedLocals); a leading underscore marks an intentionally unused parameter.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // Plain Node scripts (install hook, packaging checks): CommonJS with require.
    files: ['scripts/**/*.{js,cjs,mjs,cts,mts}'],
    languageOptions: {
      globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly', console: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off', '@typescript-eslint/no-unused-expressions': 'off' },
  },
  {
    files: ['scripts/**/*.{js,cjs}'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
