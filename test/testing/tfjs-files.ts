/** Write a TF.js LayersModel to disk as TF.js's file saver does: model.json + weights.bin. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'model.json');
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData as ArrayBuffer;
      writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(data));
      writeFileSync(
        file,
        JSON.stringify({
          modelTopology: a.modelTopology,
          format: 'layers-model',
          generatedBy: 'mse test',
          weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
        }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return file;
}
