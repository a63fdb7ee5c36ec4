# Science products: the calibrated catalogue and colour-magnitude diagram of each cluster.


rule cluster_products:
    input:
        magnitudes=WORK / "photometry" / "{object}" / "magnitudes.ecsv",
        isochrone=lambda wc: config["targets"][wc.object].get("isochrone", []),
    output:
        catalogue=WORK / "products" / "{object}" / "catalogue.ecsv",
        figure=report(
            WORK / "products" / "{object}" / "cmd.png",
            caption="../report/cmd.rst",
            category="5. Science products",
            labels={"figure": "colour-magnitude diagram of {object}"},
        ),
    log:
        LOGS / "cluster_products" / "{object}.log",
    conda:
        "../../environment.yml"
    params:
        target=lambda wc: config["targets"][wc.object],
    script:
        "../scripts/cluster_products.py"


rule transit_products:
    input:
        reference=WORK / "photometry" / "{object}" / "reference.ecsv",
        tables=lambda wc: [
            WORK / "photometry" / wc.object / f"{s}.ecsv"
            for s in photometry_stems(wc.object)
        ],
    output:
        table=WORK / "products" / "{object}" / "lightcurve.ecsv",
        fit=WORK / "products" / "{object}" / "transit_fit.json",
        comparisons=WORK / "products" / "{object}" / "comparisons.ecsv",
        figure=report(
            WORK / "products" / "{object}" / "lightcurve.png",
            caption="../report/lightcurve.rst",
            category="5. Science products",
            labels={"figure": "transit light curve of {object}"},
        ),
    log:
        LOGS / "transit_products" / "{object}.log",
    conda:
        "../../environment.yml"
    params:
        target=lambda wc: config["targets"][wc.object],
        aperture_m=config["instrument"].get("aperture_m", 0.0),
        elevation_m=config["site"].get("elevation", 0.0),
    script:
        "../scripts/transit_products.py"
